// A model standing in for a small run's kernel (or the REST routes) in the Experiments view's
// tests: every question answered at once with all of `rows` and `columns`.
export function modelOf(columns: any[], rows: any[]) {
  const handlers: any[] = [];
  return {
    send: (msg: any) => setTimeout(() => handlers.forEach(h => h({
      event: 'experiments', req: msg.req, columns, total: rows.length, offset: 0,
      limit: msg.limit, sort: msg.sort, desc: msg.desc, next: null, rows, version: 1
    })), 0),
    on: (_: string, h: any) => handlers.push(h),
    off: () => undefined,
    get: () => null
  };
}
