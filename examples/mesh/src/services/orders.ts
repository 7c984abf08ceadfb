import { randomUUID } from 'node:crypto';
import { HttpError, callService, intParam, type Route, type ServiceFactory } from './http.js';

interface Quote {
  sku: string;
  qty: number;
  unitCents: number;
  totalCents: number;
  available: number;
  canFulfil: boolean;
}

/** Quotes and orders: calls `inventory` and `pricing` (in parallel) as caller `orders`. */
export const orders: ServiceFactory = ({ client }) => {
  async function quote(sku: string, qty: number): Promise<{ quote: Quote; via: Record<string, string> }> {
    if (!/^[\w-]{1,32}$/.test(sku)) throw new HttpError(400, 'sku is required');
    const [stock, price] = await Promise.all([
      callService<{ available: number }>(client, { service: 'inventory', path: `/stock/${sku}` }),
      callService<{ cents: number }>(client, { service: 'pricing', path: `/prices/${sku}` }),
    ]);
    const available = stock.data.available;
    return {
      quote: {
        sku,
        qty,
        unitCents: price.data.cents,
        totalCents: price.data.cents * qty,
        available,
        canFulfil: available >= qty,
      },
      via: { ...stock.via, ...price.via },
    };
  }

  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/quote$/,
      handle: async ({ url }) => {
        const { quote: q, via } = await quote(url.searchParams.get('sku') ?? '', intParam(url, 'qty', 1, 1, 1000));
        return { body: { via, quote: q } };
      },
    },
    {
      method: 'POST',
      path: /^\/orders$/,
      handle: async ({ readBody }) => {
        let input: { sku?: unknown; qty?: unknown };
        try {
          input = JSON.parse(await readBody()) as typeof input;
        } catch {
          throw new HttpError(400, 'body must be JSON { "sku": string, "qty": number }');
        }
        const qty = input.qty === undefined ? 1 : input.qty;
        if (typeof input.sku !== 'string') throw new HttpError(400, 'sku must be a string');
        if (typeof qty !== 'number' || !Number.isInteger(qty) || qty < 1 || qty > 1000) {
          throw new HttpError(400, 'qty must be an integer in 1..1000');
        }
        const { quote: q, via } = await quote(input.sku, qty);
        if (!q.canFulfil) return { status: 409, body: { via, error: 'out_of_stock', quote: q } };
        // The shop keeps no order book: the id is what a real service would have stored.
        return { status: 201, body: { via, order: { orderId: randomUUID(), ...q } } };
      },
    },
  ];
  return routes;
};
