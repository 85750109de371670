// The logged-in user, kept in localStorage so that a reload or a manager
// restart resumes the session while its token is valid.
import { reactive } from 'vue'

export type Role = 'admin' | 'operator' | 'viewer'

const KEY = 'admq.session'

interface Stored {
  token: string
  username: string
  role: Role
  expireTime: string
}

function load(): Stored | null {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? 'null')
    return s && typeof s.token === 'string' ? s : null
  } catch {
    return null
  }
}

const stored = load()

export const session = reactive({
  token: stored?.token ?? '',
  username: stored?.username ?? '',
  role: (stored?.role ?? 'viewer') as Role,
  /** online is false while the manager does not answer. */
  online: true,
  /** expiredNotice is set when the API refused the token (code 202). */
  expiredNotice: false,
  /** utcOffset is the manager's offset from UTC in seconds: API times are in its zone. */
  utcOffset: 0,
  onExpired: (() => {}) as () => void,

  get loggedIn(): boolean {
    return this.token !== ''
  },
  get canOperate(): boolean {
    return this.role === 'admin' || this.role === 'operator'
  },
  get isAdmin(): boolean {
    return this.role === 'admin'
  },
  login(s: Stored) {
    this.token = s.token
    this.username = s.username
    this.role = s.role
    this.expiredNotice = false
    localStorage.setItem(KEY, JSON.stringify(s))
  },
  logout() {
    this.token = ''
    localStorage.removeItem(KEY)
  },
  expired() {
    if (!this.token) return
    this.logout()
    this.expiredNotice = true
    this.onExpired()
  },
  reachable(ok: boolean) {
    this.online = ok
  },
})
