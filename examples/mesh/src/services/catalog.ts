import { PRODUCTS, SKUS, productOf } from './data.js';
import { HttpError, callService, type Route, type ServiceFactory } from './http.js';

/** Products with their current price: calls `pricing` as caller `catalog`. */
export const catalog: ServiceFactory = ({ client }) => {
  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/products$/,
      handle: async () => {
        const prices = await callService<{ prices: Record<string, number> }>(client, {
          service: 'pricing',
          path: `/prices?skus=${SKUS.join(',')}`,
        });
        const products = PRODUCTS.map((p) => ({ ...p, cents: prices.data.prices[p.sku] ?? null }));
        return { body: { via: prices.via, products } };
      },
    },
    {
      method: 'GET',
      path: /^\/products\/([\w-]+)$/,
      handle: async ({ params }) => {
        const sku = params[0] ?? '';
        const product = productOf(sku);
        if (product === undefined) throw new HttpError(404, `unknown sku ${sku}`);
        const price = await callService<{ cents: number }>(client, { service: 'pricing', path: `/prices/${sku}` });
        return { body: { via: price.via, product: { ...product, cents: price.data.cents } } };
      },
    },
  ];
  return routes;
};
