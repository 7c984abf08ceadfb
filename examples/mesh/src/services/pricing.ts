import { priceOf } from './data.js';
import { HttpError, type Route, type ServiceFactory } from './http.js';

/** Leaf service: prices in cents, one or many at a time. */
export const pricing: ServiceFactory = () => {
  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/prices\/([\w-]+)$/,
      handle: ({ params }) => {
        const sku = params[0] ?? '';
        const cents = priceOf(sku);
        if (cents === undefined) throw new HttpError(404, `no price for ${sku}`);
        return { body: { sku, cents, currency: 'EUR' } };
      },
    },
    {
      method: 'GET',
      path: /^\/prices$/,
      handle: ({ url }) => {
        const skus = (url.searchParams.get('skus') ?? '').split(',').filter((s) => s !== '');
        if (skus.length === 0 || skus.length > 100) throw new HttpError(400, 'skus must list 1..100 SKUs');
        const prices: Record<string, number> = {};
        for (const sku of skus) {
          const cents = priceOf(sku);
          if (cents !== undefined) prices[sku] = cents;
        }
        return { body: { prices, currency: 'EUR' } };
      },
    },
  ];
  return routes;
};
