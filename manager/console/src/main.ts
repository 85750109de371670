import { createApp } from 'vue'
import 'element-plus/theme-chalk/base.css'
import 'element-plus/es/components/message/style/css'
import 'element-plus/es/components/message-box/style/css'
import 'element-plus/es/components/notification/style/css'
import 'element-plus/es/components/loading/style/css'
import { ElLoading } from 'element-plus'
import App from './App.vue'
import { router } from './router'
import { i18n } from './i18n'
import { session } from './session'
import './theme.css'
import './style.css'

session.onExpired = () => {
  const here = router.currentRoute.value
  if (here.name !== 'login') router.replace({ name: 'login', query: { redirect: here.fullPath } })
}

createApp(App).use(i18n).use(router).use(ElLoading).mount('#app')
