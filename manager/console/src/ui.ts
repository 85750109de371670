// What every page shares: errors shown with their message and code,
// confirmations, paged lists driven by pageNum/pageSize, removing a row
// and a dialog's form that creates one.
import { reactive, ref, type Ref, type UnwrapRef } from 'vue'
import { ElMessage, ElMessageBox } from 'element-plus'
import { ApiError, del, post, type Page } from './api'
import { i18n } from './i18n'

const t = (k: string, v?: Record<string, unknown>) => i18n.global.t(k, v ?? {})

/** errorText is how an API error reads: its message, then code and name. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.unreachable) return t('common.unreachable')
    let s = `${e.message} (${t('common.code')} ${e.code} ${e.msg})`
    if (typeof e.data === 'string' && e.data) s += ': ' + e.data
    else if (e.data && typeof e.data === 'object') s += ': ' + JSON.stringify(e.data)
    return s
  }
  return String(e)
}

export function showError(e: unknown) {
  ElMessage({ type: 'error', message: errorText(e), duration: 8000, showClose: true, customClass: 'api-error' })
}

export function done(msg?: string) {
  ElMessage({ type: 'success', message: msg ?? t('common.done'), duration: 2500 })
}

export async function confirm(text: string): Promise<boolean> {
  try {
    await ElMessageBox.confirm(text, t('common.confirm'), {
      type: 'warning',
      confirmButtonText: t('common.ok'),
      cancelButtonText: t('common.cancel'),
    })
    return true
  } catch {
    return false
  }
}

/** usePage keeps one page of a list and reloads it when asked. */
export function usePage<T>(fetch: (pageNum: number, pageSize: number) => Promise<Page<T>>, size = 10) {
  const state = reactive({ pageNum: 1, pageSize: size, total: 0 })
  const list = ref([]) as Ref<T[]>
  const loading = ref(false)
  const error = ref('')
  async function load() {
    loading.value = true
    try {
      const p = await fetch(state.pageNum, state.pageSize)
      list.value = p.list
      state.total = p.total
      error.value = ''
      if (p.list.length === 0 && state.pageNum > 1 && p.total > 0) {
        state.pageNum = Math.max(1, p.pages)
        return load()
      }
    } catch (e) {
      error.value = errorText(e)
    } finally {
      loading.value = false
    }
  }
  return { state, list, loading, error, load }
}

/** removeRow asks question and, when the user agrees, deletes the row id
 * at path, says it is done and calls reload; a refusal is shown. */
export async function removeRow(question: string, path: string, id: string, reload: () => void) {
  if (!(await confirm(question))) return
  try {
    await del(path, { id })
    done()
    reload()
  } catch (e) {
    showError(e)
  }
}

/** useCreateForm is the form of a dialog that creates a row: submit posts
 * it to path and, on success, closes the dialog, empties the form (blank)
 * and calls created; a refusal is shown in the dialog (formError). */
export function useCreateForm<F extends object>(path: string, blank: () => F, created: () => void) {
  const open = ref(false)
  const form = reactive(blank())
  const formError = ref('')
  const busy = ref(false)
  async function submit() {
    busy.value = true
    formError.value = ''
    try {
      await post(path, form)
      open.value = false
      Object.assign(form, blank() as UnwrapRef<F>)
      done()
      created()
    } catch (e) {
      formError.value = errorText(e)
    } finally {
      busy.value = false
    }
  }
  return { open, form, formError, busy, submit }
}

/** copyText copies s; on pages that are not a secure context it falls back to a selection. */
export async function copyText(s: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(s)
    return true
  } catch {
    const ta = document.createElement('textarea')
    ta.value = s
    ta.setAttribute('readonly', '')
    ta.style.position = 'fixed'
    ta.style.opacity = '0'
    document.body.appendChild(ta)
    ta.select()
    const ok = document.execCommand('copy')
    ta.remove()
    return ok
  }
}
