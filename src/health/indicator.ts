/** What one health check reports; `checks.<name>` in GET /api/health. */
export interface IndicatorResult {
  status: 'up' | 'degraded' | 'down' | 'unknown';
  message?: string;
  /** Shown to admins only (sizes, times, file names); anonymous callers see the status alone. */
  details?: Record<string, unknown>;
}

export type Indicator = () => IndicatorResult | Promise<IndicatorResult>;
