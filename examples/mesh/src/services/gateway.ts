import type { RouteContext } from './http.js';
import { HttpError, callService, intParam, type Route, type ServiceFactory } from './http.js';

const USER = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The end user a request is for: `x-user` header or `?user=` (`user:<name>`). It becomes the
 * caller of every call the gateway makes for it, so each user gets its own bucket of the gateway
 * client's per-caller rate limit. A request naming no user is keyed by its remote address
 * (`addr:<ip>`), as the serving side's `callerKeyOf` does: one shared "anonymous" bucket let a
 * few parallel `curl`s from different people refuse each other.
 */
function userCaller(ctx: RouteContext, param = 'user'): string {
  const header = ctx.req.headers['x-user'];
  const name = ctx.url.searchParams.get(param) ?? (typeof header === 'string' ? header : undefined);
  if (name === undefined) return `addr:${ctx.req.socket.remoteAddress ?? 'unknown'}`;
  if (!USER.test(name)) throw new HttpError(400, `${param} must be 1..64 letters, digits, "_", "." or "-"`);
  return `user:${name}`;
}

/** The mesh's front door: the only fixed port, calling `catalog` and `orders` for each user. */
export const gateway: ServiceFactory = ({ client, userRatePerSec }) => {
  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/$/,
      handle: () => ({
        body: {
          endpoints: {
            'GET /api/products': 'all products with prices (gateway -> catalog -> pricing)',
            'GET /api/products/:sku': 'one product (gateway -> catalog -> pricing)',
            'GET /api/quote?sku=tea-001&qty=2': 'price and stock (gateway -> orders -> inventory + pricing)',
            'POST /api/orders {"sku":"tea-001","qty":2}': 'place an order (gateway -> orders -> inventory + pricing)',
            'GET /limited?caller=alice&n=40': `a burst of n calls as one user: over ${userRatePerSec}/s some are refused with retryAfterMs`,
            'GET /admin/stats': 'this instance: counters and its client view of every peer',
          },
          user: 'x-user header or ?user= names the end user (the caller of the calls made for it)',
        },
      }),
    },
    {
      method: 'GET',
      path: /^\/api\/products$/,
      handle: async (ctx) => {
        const r = await callService<{ products: unknown }>(client, {
          service: 'catalog',
          path: '/products',
          caller: userCaller(ctx),
        });
        return { body: { via: r.via, products: r.data.products } };
      },
    },
    {
      method: 'GET',
      path: /^\/api\/products\/([\w-]+)$/,
      handle: async (ctx) => {
        const r = await callService<{ product: unknown }>(client, {
          service: 'catalog',
          path: `/products/${ctx.params[0] ?? ''}`,
          caller: userCaller(ctx),
        });
        return { body: { via: r.via, product: r.data.product } };
      },
    },
    {
      method: 'GET',
      path: /^\/api\/quote$/,
      handle: async (ctx) => {
        const sku = ctx.url.searchParams.get('sku') ?? '';
        if (!/^[\w-]{1,32}$/.test(sku)) throw new HttpError(400, 'sku is required');
        const qty = intParam(ctx.url, 'qty', 1, 1, 1000);
        const r = await callService<{ quote: unknown }>(client, {
          service: 'orders',
          path: `/quote?sku=${sku}&qty=${qty}`,
          caller: userCaller(ctx),
        });
        return { body: { via: r.via, quote: r.data.quote } };
      },
    },
    {
      method: 'POST',
      path: /^\/api\/orders$/,
      handle: async (ctx) => {
        const caller = userCaller(ctx);
        let json: unknown;
        try {
          json = JSON.parse(await ctx.readBody());
        } catch {
          throw new HttpError(400, 'body must be JSON { "sku": string, "qty": number }');
        }
        // Not idempotent: the client retries it only where nothing was sent (e.g. connection refused).
        const r = await callService<{ order: unknown }>(client, {
          service: 'orders',
          path: '/orders',
          method: 'POST',
          caller,
          json,
        });
        return { status: 201, body: { via: r.via, order: r.data.order } };
      },
    },
    {
      method: 'GET',
      path: /^\/limited$/,
      handle: async (ctx) => {
        // Everything here goes through the same client and the same per-user buckets as /api/*.
        const caller = userCaller(ctx, 'caller');
        const n = intParam(ctx.url, 'n', Math.ceil(userRatePerSec * 2), 1, 500);
        const results = await Promise.allSettled(
          Array.from({ length: n }, () => callService(client, { service: 'catalog', path: '/products/tea-001', caller })),
        );
        let ok = 0;
        let limited = 0;
        let failed = 0;
        const retryAfterMs: number[] = [];
        let example: string | undefined;
        const perInstance: Record<string, number> = {};
        for (const r of results) {
          if (r.status === 'fulfilled') {
            ok++;
            perInstance[r.value.servedBy] = (perInstance[r.value.servedBy] ?? 0) + 1;
            continue;
          }
          const e = r.reason as { code?: unknown; retryAfterMs?: unknown; message?: unknown };
          if (e?.code === 'PEERLB_RATE_LIMITED' && typeof e.retryAfterMs === 'number') {
            limited++;
            retryAfterMs.push(e.retryAfterMs);
            example ??= String(e.message);
          } else {
            failed++;
          }
        }
        return {
          body: {
            caller,
            limit: { ratePerSec: userRatePerSec, burst: userRatePerSec },
            sent: n,
            ok,
            limited,
            failed,
            retryAfterMs: retryAfterMs.length > 0 ? { min: Math.min(...retryAfterMs), max: Math.max(...retryAfterMs) } : null,
            example: example ?? null,
            // Which catalog instance answered each call that was let through.
            perInstance,
          },
        };
      },
    },
  ];
  return routes;
};
