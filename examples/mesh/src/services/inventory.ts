import { stockOf } from './data.js';
import { HttpError, type Route, type ServiceFactory } from './http.js';

/** Leaf service: units in stock. */
export const inventory: ServiceFactory = () => {
  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/stock\/([\w-]+)$/,
      handle: ({ params }) => {
        const sku = params[0] ?? '';
        const available = stockOf(sku);
        if (available === undefined) throw new HttpError(404, `unknown sku ${sku}`);
        return { body: { sku, available } };
      },
    },
  ];
  return routes;
};
