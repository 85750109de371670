// The console speaks only the manager's public REST API under /admq-manager:
// every answer is the envelope {code, msg, message, data}.
import { session } from './session'

export const API = '/admq-manager'

/** ApiError is an envelope with a non-zero code, or no envelope at all (code -1). */
export class ApiError extends Error {
  constructor(
    public code: number,
    public msg: string,
    message: string,
    public status: number,
    public data: unknown = null,
  ) {
    super(message)
  }
  /** unreachable: the manager did not answer (stopped, restarting, network). */
  get unreachable(): boolean {
    return this.code === -1
  }
}

export interface Page<T> {
  total: number
  pageNum: number
  pageSize: number
  pages: number
  list: T[]
}

type Query = Record<string, string | number | undefined | null>

export function url(path: string, query?: Query): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  }
  const s = q.toString()
  return API + path + (s ? '?' + s : '')
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = {}
  if (json) h['Content-Type'] = 'application/json'
  if (session.token) h['Authorization'] = 'Bearer ' + session.token
  return h
}

/** settle turns an envelope into its data or an ApiError; code 202 ends the session. */
function settle<T>(status: number, text: string): T {
  let env: { code: number; msg: string; message: string; data: unknown }
  try {
    env = JSON.parse(text)
  } catch {
    throw new ApiError(-2, 'BAD_RESPONSE', `HTTP ${status}: ${text.slice(0, 200)}`, status)
  }
  if (env.code !== 0) {
    if (env.code === 202) session.expired()
    throw new ApiError(env.code, env.msg, env.message, status, env.data)
  }
  return env.data as T
}

export async function call<T = unknown>(method: string, path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
  let resp: Response
  try {
    resp = await fetch(url(path, opts.query), {
      method,
      headers: headers(opts.body !== undefined),
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store',
    })
  } catch (e) {
    session.reachable(false)
    throw new ApiError(-1, 'UNREACHABLE', String(e), 0)
  }
  session.reachable(true)
  return settle<T>(resp.status, await resp.text())
}

export const get = <T>(path: string, query?: Query) => call<T>('GET', path, { query })
export const post = <T>(path: string, body?: unknown) => call<T>('POST', path, { body: body ?? {} })
export const put = <T>(path: string, body?: unknown) => call<T>('PUT', path, { body: body ?? {} })
export const del = <T>(path: string, body?: unknown) => call<T>('DELETE', path, { body })

/**
 * upload sends file as the multipart field "file" with XMLHttpRequest, so
 * that the browser streams it from disk and reports progress (fetch cannot).
 */
export function upload<T>(path: string, file: File, progress: (sent: number, total: number) => void): { done: Promise<T>; abort: () => void } {
  const xhr = new XMLHttpRequest()
  const done = new Promise<T>((resolve, reject) => {
    xhr.open('POST', url(path))
    if (session.token) xhr.setRequestHeader('Authorization', 'Bearer ' + session.token)
    xhr.upload.onprogress = (e) => progress(e.loaded, e.lengthComputable ? e.total : file.size)
    xhr.onload = () => {
      try {
        resolve(settle<T>(xhr.status, xhr.responseText))
      } catch (e) {
        reject(e)
      }
    }
    xhr.onerror = () => reject(new ApiError(-1, 'UNREACHABLE', 'the upload was interrupted', 0))
    xhr.onabort = () => reject(new ApiError(-3, 'ABORTED', 'upload cancelled', 0))
    const form = new FormData()
    form.append('file', file, file.name)
    xhr.send(form)
  })
  return { done, abort: () => xhr.abort() }
}

export interface SSEEvent {
  event: string
  data: string
}

/**
 * events follows a text/event-stream with fetch (EventSource cannot send
 * the bearer token), calling each for every event until the stream ends
 * or signal aborts. It resolves when the server closed the stream.
 */
export async function events(path: string, query: Query, each: (e: SSEEvent) => void, signal: AbortSignal): Promise<void> {
  let resp: Response
  try {
    resp = await fetch(url(path, query), { headers: headers(false), signal, cache: 'no-store' })
  } catch (e) {
    if (signal.aborted) return
    session.reachable(false)
    throw new ApiError(-1, 'UNREACHABLE', String(e), 0)
  }
  if (!(resp.headers.get('Content-Type') ?? '').startsWith('text/event-stream')) {
    settle(resp.status, await resp.text())
    return
  }
  const reader = resp.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  let ev: SSEEvent = { event: '', data: '' }
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buf += value
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '')
        buf = buf.slice(nl + 1)
        if (line === '') {
          if (ev.event || ev.data) each(ev)
          ev = { event: '', data: '' }
        } else if (line.startsWith('event:')) {
          ev.event = line.slice(6).trim()
        } else if (line.startsWith('data:')) {
          ev.data += line.slice(5).trim()
        }
      }
    }
  } catch (e) {
    if (signal.aborted) return
    throw new ApiError(-1, 'UNREACHABLE', 'the event stream broke: ' + String(e), 0)
  }
}
