import type { ServiceName } from '../protocol.js';
import { catalog } from './catalog.js';
import { gateway } from './gateway.js';
import type { ServiceFactory } from './http.js';
import { inventory } from './inventory.js';
import { orders } from './orders.js';
import { pricing } from './pricing.js';

export const SERVICE_FACTORIES: Readonly<Record<ServiceName, ServiceFactory>> = {
  gateway,
  catalog,
  pricing,
  inventory,
  orders,
};
