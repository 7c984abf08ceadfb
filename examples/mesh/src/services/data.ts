/** The shop's fixed data. Every instance of a service holds the same copy, so any one can answer. */
export interface Product {
  sku: string;
  name: string;
  category: string;
}

export const PRODUCTS: readonly Product[] = [
  { sku: 'tea-001', name: 'Sencha green tea, 100 g', category: 'tea' },
  { sku: 'tea-002', name: 'Assam black tea, 250 g', category: 'tea' },
  { sku: 'tea-003', name: 'Rooibos, 100 g', category: 'tea' },
  { sku: 'cup-001', name: 'Stoneware cup', category: 'tableware' },
  { sku: 'pot-001', name: 'Cast-iron teapot, 0.8 l', category: 'tableware' },
  { sku: 'pot-002', name: 'Glass teapot, 1.2 l', category: 'tableware' },
  { sku: 'acc-001', name: 'Bamboo tea whisk', category: 'accessories' },
  { sku: 'acc-002', name: 'Tea strainer', category: 'accessories' },
];

export const SKUS: readonly string[] = PRODUCTS.map((p) => p.sku);

const PRICES_CENTS: Readonly<Record<string, number>> = {
  'tea-001': 1290,
  'tea-002': 990,
  'tea-003': 790,
  'cup-001': 1450,
  'pot-001': 5900,
  'pot-002': 3490,
  'acc-001': 1890,
  'acc-002': 650,
};

const STOCK: Readonly<Record<string, number>> = {
  'tea-001': 120,
  'tea-002': 48,
  'tea-003': 0,
  'cup-001': 64,
  'pot-001': 7,
  'pot-002': 15,
  'acc-001': 22,
  'acc-002': 310,
};

export function productOf(sku: string): Product | undefined {
  return PRODUCTS.find((p) => p.sku === sku);
}

export function priceOf(sku: string): number | undefined {
  return PRICES_CENTS[sku];
}

export function stockOf(sku: string): number | undefined {
  return STOCK[sku];
}
