// Times come from the API as "yyyy-MM-dd HH:mm:ss" in the manager's time
// zone; they are shown in the browser's.
import { session } from './session'
import { i18n } from './i18n'

export function parseTime(s: string | null | undefined): Date | null {
  if (!s) return null
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s)
  if (!m) return null
  const utc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) - session.utcOffset * 1000
  return new Date(utc)
}

export function fmtTime(s: string | null | undefined): string {
  const d = parseTime(s)
  if (!d) return '—'
  return d.toLocaleString(i18n.global.locale.value, {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  })
}

/** toApiTime formats a browser Date in the manager's zone for query parameters. */
export function toApiTime(d: Date): string {
  const t = new Date(d.getTime() + session.utcOffset * 1000)
  const p = (n: number) => String(n).padStart(2, '0')
  return `${t.getUTCFullYear()}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())} ${p(t.getUTCHours())}:${p(t.getUTCMinutes())}:${p(t.getUTCSeconds())}`
}

export function fmtBytes(n: number | string | null | undefined): string {
  const v = Number(n ?? 0)
  if (!isFinite(v) || v <= 0) return '0 B'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let x = v
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024
    i++
  }
  return (i === 0 ? x.toFixed(0) : x.toFixed(1)) + ' ' + units[i]
}

export function pct(r: number | null | undefined): string {
  if (r === null || r === undefined || !isFinite(r)) return '—'
  return (r * 100).toFixed(1) + '%'
}
