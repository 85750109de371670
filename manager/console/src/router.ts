import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { session } from './session'

// Client routes: the manager answers index.html for every path outside
// /admq-manager, so each of these can be reloaded or bookmarked.
const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./views/Login.vue'), meta: { public: true } },
  { path: '/', redirect: '/overview' },
  { path: '/overview', name: 'overview', component: () => import('./views/Overview.vue') },
  { path: '/areas', name: 'areas', component: () => import('./views/Areas.vue') },
  { path: '/servers', name: 'servers', component: () => import('./views/Servers.vue') },
  { path: '/packages', name: 'packages', component: () => import('./views/Packages.vue') },
  { path: '/clusters', name: 'clusters', component: () => import('./views/Clusters.vue') },
  { path: '/clusters/:id', name: 'cluster', component: () => import('./views/ClusterDetail.vue'), props: true },
  { path: '/clusters/:id/config', name: 'config', component: () => import('./views/ClusterConfig.vue'), props: true },
  { path: '/jobs', name: 'jobs', component: () => import('./views/Jobs.vue') },
  { path: '/users', name: 'users', component: () => import('./views/Users.vue'), meta: { admin: true } },
  { path: '/tokens', name: 'tokens', component: () => import('./views/Tokens.vue'), meta: { admin: true } },
  { path: '/consumers', name: 'consumers', component: () => import('./views/Consumers.vue'), meta: { admin: true } },
  { path: '/audit', name: 'audit', component: () => import('./views/Audit.vue'), meta: { admin: true } },
  { path: '/:rest(.*)*', name: 'notfound', component: () => import('./views/NotFound.vue') },
]

export const router = createRouter({ history: createWebHistory('/'), routes })

router.beforeEach((to) => {
  if (!to.meta.public && !session.loggedIn) return { name: 'login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  if (to.meta.admin && !session.isAdmin) return { name: 'overview' }
  if (to.name === 'login' && session.loggedIn) return { name: 'overview' }
})
