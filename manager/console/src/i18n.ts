// Every label in Chinese and English, chosen from the browser's language
// and switchable; the choice is remembered.
import { createI18n } from 'vue-i18n'

const zh = {
  app: { title: 'ADMQ 管控台', subtitle: '分布式消息队列管理', language: '语言' },
  nav: { label: '主菜单', overview: '概览', areas: '可用区', servers: '服务器', packages: '软件包', clusters: '集群', jobs: '部署任务', tokens: '加入令牌', consumers: '第三方应用', users: '用户', audit: '审计日志' },
  common: {
    actions: '操作', cancel: '取消', close: '关闭', code: '错误码', confirm: '请确认', copied: '已复制', copy: '复制', created: '创建时间',
    delete: '删除', done: '操作成功', no: '否', yes: '是', notFound: '页面不存在', ok: '确定', open: '查看', pages: '分页', pageSize: '每页条数', refresh: '刷新',
    remove: '移除', search: '查询', unreachable: '无法连接管理服务，正在重试…',
  },
  login: { username: '用户名', password: '密码', submit: '登录', expired: '登录已失效，请重新登录' },
  user: {
    changePassword: '修改密码', logout: '退出登录', oldPassword: '原密码', newPassword: '新密码', again: '确认新密码',
    mismatch: '两次输入的新密码不一致', passwordChanged: '密码已修改，请重新登录',
    passwordRule: '8 到 72 个字节（UTF-8）',
  },
  role: { admin: '管理员', operator: '运维', viewer: '只读' },
  status: { online: '在线', offline: '离线', pending: '待接入' },
  run: { unknown: '未知', running: '运行中', stopped: '已停止', failed: '失败', '': '—' },
  deploy: { undeployed: '未部署', deploying: '部署中', deployed: '已部署', failed: '部署失败' },
  jobState: { pending: '等待中', running: '进行中', succeeded: '成功', failed: '失败' },
  jobType: { deploy_cluster: '集群部署', deploy_node: '节点部署', server_bootstrap: 'SSH 添加服务器' },
  steps: { transfer: '传输', install: '安装', configure: '配置', start: '启动', health: '健康检查', connect: '连接', detect: '检测', upload: '上传代理', online: '上线' },
  stepState: { pending: '等待', running: '进行中', succeeded: '完成', failed: '失败', skipped: '跳过', cancelled: '取消' },
  tokenStatus: { active: '有效', revoked: '已撤销', expired: '已过期', used: '已用完' },
  areas: { add: '添加可用区', code: '可用区编码', name: '可用区名称', confirmDelete: '删除可用区 {name}？' },
  servers: {
    add: '添加服务器', installByHand: '手动安装（加入令牌）', area: '可用区', allAreas: '全部可用区', allStatus: '全部状态', status: '代理状态',
    managerIp: '管理 IP', hostname: '主机名', lastSeen: '最后在线', platform: '系统/架构', cpus: 'CPU 数', cpu: 'CPU', memUsed: '内存',
    agentVersion: '代理版本', ping: '连通测试', pong: '往返 {ms} ms，代理版本 {v}', facts: '详情', dataIp: '数据 IP', sshPort: 'SSH 端口',
    account: '账号', programDir: '程序目录', dataDir: '数据目录', clusters: '部署的集群', memory: '可用内存/总内存', disk: '可用磁盘/总磁盘',
    exporter: '采集器上报', confirmDelete: '删除服务器 {ip}？其代理证书会被吊销。', auth: '认证方式', byPassword: 'SSH 密码', byKey: 'SSH 私钥',
    byHand: '仅登记（手动安装代理）', password: '密码', privateKey: '私钥（PEM）', passphrase: '私钥口令', keepPassword: '保留凭据（加密保存）',
    dataIpHint: '默认同管理 IP', registering: '正在登记…', added: '服务器 {ip} 已添加，状态：{status}',
    bootstrap: '通过 SSH 安装代理：{ip}', bootstrapOnline: '服务器 {ip} 已添加，代理在线', bootstrapFailed: '服务器 {ip} 未添加：见失败的步骤',
    background: '关闭对话框不会中断安装，可在“部署任务”页继续查看。', back: '返回修改', finish: '完成',
  },
  tokens: {
    create: '创建加入令牌', description: '描述', maxUses: '可用次数', maxUsesHint: '0 表示不限', ttlHours: '有效期（小时）', ttlHint: '0 表示永不过期',
    defaultArea: '默认可用区', shownOnce: '令牌只显示这一次，请立即复制。', runAsRoot: '在服务器上以 root 运行：', command: '安装命令',
    id: '令牌 ID', uses: '已用/上限', status: '状态', expires: '过期时间', never: '永不', revoke: '撤销', confirmRevoke: '撤销令牌 {id}？',
  },
  packages: {
    upload: '上传软件包', file: '软件包文件', nameRule: '文件名：名称-V版本-架构.tar.gz（架构 x86、arm 或 all）', uploading: '正在上传 {name}',
    progress: '上传进度', uploaded: '{name} 已上传', details: '详情', components: '组件', fileName: '文件名', name: '名称', version: '版本',
    cpu: '架构', size: '大小', enabled: '启用', confirmDelete: '删除软件包 {name}？',
  },
  clusters: {
    create: '新增集群', name: '集群名称', description: '描述', package: '软件包', samePackage: '同上方软件包', packageFor: '{c} 的软件包',
    zkList: '协调器节点（zkList）', storageList: '存储节点（storageList）', brokerList: '代理节点（brokerList）', addNode: '添加节点',
    server: '选择服务器', serverOf: '{n} 的服务器', port: '端口', portDefault: '端口（默认）', programDir: '程序目录', dataDir: '数据目录',
    nodeCount: '共 {n} 个节点', created: '集群 {name} 已创建，{n} 个节点', nodes: '节点数', components: '组件',
    confirmDelete: '删除集群 {name}？所有节点会被停止并清理目录。', deleted: '集群 {name} 已删除', notCleanedTitle: '未清理的节点',
    notCleanedText: '以下节点未能清理：排队的会在其代理重新连接后清理，其余仍留在主机上。', reason: '原因', queued: '已排队',
  },
  nodes: {
    node: '节点', component: '组件', server: '服务器:端口', deployStatus: '部署状态', runStatus: '运行状态', restarts: '重启次数', started: '启动时间',
    config: '配置', deploy: '部署', deployAll: '一键部署', start: '启动', stop: '停止',
    restart: '重启', log: '日志', logOf: '{n} 的日志', follow: '跟随', emptyLog: '（日志为空）', cmdDone: '{n} {cmd}：{status}，PID {pid}',
  },
  sync: {
    s0: '已同步', s1: '需重启', s2: '状态未知', s3: '未应用',
    hint1: '草稿配置与节点上的不同：发布（刷新）后重启生效', hint2: '上次应用被中断，节点可能是旧或新文件：请再次发布', hint3: '尚未应用过配置（未部署）',
  },
  jobs: { job: '任务', progress: '部署进度', type: '类型', state: '状态', by: '操作人', reason: '原因', watch: '跟踪', cluster: '集群', finished: '结束时间', target: '对象', server: '服务器' },
  overview: {
    servers: '服务器', byArea: '各可用区服务器在线情况', fleetTrend: '集群主机平均使用率（%）', reporting: '{n} 台上报，{up} 台在线', cpu: 'CPU', memory: '内存',
    disk: '磁盘', cpuHist: 'CPU 使用率分布（台数）', memHist: '内存使用率分布（台数）', diskHist: '磁盘使用率分布（台数）', clusters: '集群与节点状态',
    jobs: '部署任务（{n} 个进行中）',
  },
  consumers: {
    about: '第三方应用通过 Apollo 兼容的开放接口（/openapi/v1）读写配置：应用 = 集群，namespace = 配置文件，cluster = default 或节点。',
    add: '创建第三方应用', appId: '应用 ID', name: '名称', owner: '负责人', orgId: '部门 ID', orgName: '部门名称', ownerName: '负责人', ownerEmail: '负责人邮箱',
    ttlDays: '有效期（天）', token: '令牌', confirmRevoke: '撤销第三方应用 {name} 的令牌？', grants: '授权', grantsOf: '{name} 的授权', cluster: '集群（appId）',
    namespace: '配置文件（namespace）', scope: '范围（cluster）', rights: '权限', all: '全部', allNamespaces: '全部配置文件', allScopes: '全部（default 与各节点）',
    modify: '修改', release: '发布', read: '只读', addGrant: '添加授权',
  },
  config: {
    title: '配置', file: '配置文件', apply: '部署以生效', confirmApply: '部署集群：配置有变化的节点会写入新文件并重启，其他节点不变。继续？',
    layer: '集群层', layerHint: '该组件的所有节点', node: '节点', nodeHint: '节点的生效配置', add: '新增配置项', addOwn: '新增节点自有项',
    key: '配置项', value: '值', describes: '说明', on: '启用', source: '来源', edit: '编辑', overrideShort: '覆盖', reset: '恢复', src: { cluster: '集群', node: '节点' },
    addLayer: '新增集群层配置项', editLayer: '编辑集群层配置项 {key}', addNode: '新增节点自有配置项', override: '节点覆盖 {key}',
    confirmDelete: '删除配置项 {key}？', confirmReset: '恢复 {key} 为集群层的值？',
  },
  releases: {
    title: '发布历史', publish: '发布', diff: '对比所选两个版本', rollingRestart: '滚动重启 {c}', pick: '选择', kind: '类型', name: '标题', comment: '备注',
    rollback: '回滚到此版本', unchanged: '所有节点已是该配置：无需发布', draftVsReleased: '草稿与最近一次发布的差异：', change: '变化', added: '新增',
    changed: '修改', removed: '删除', released: '已发布', draft: '草稿', batchSize: '每批节点数', failureBudget: '允许失败节点数', detailOf: '版本 #{n}',
    diffOf: '版本 #{a} 与 #{b} 的差异',
  },
  releaseKind: { deploy: '部署', flush: '刷新', rollout: '发布', rollback: '回滚' },
  releaseState: { pending: '等待', applying: '进行中', applied: '已生效', failed: '失败', unchanged: '未变化', restored: '已恢复', interrupted: '中断', cancelled: '取消' },
  users: { add: '添加用户', role: '角色', confirmDelete: '删除用户 {name}？' },
  audit: { user: '用户', method: '方法', path: '路径', time: '时间', from: '开始时间', to: '结束时间', result: 'HTTP/错误码', ip: '来源地址', detail: '详情' },
}

type Messages = typeof zh

const en: Messages = {
  app: { title: 'ADMQ Console', subtitle: 'Distributed message queue management', language: 'Language' },
  nav: { label: 'Main menu', overview: 'Overview', areas: 'Areas', servers: 'Servers', packages: 'Packages', clusters: 'Clusters', jobs: 'Jobs', tokens: 'Join tokens', consumers: 'Third-party apps', users: 'Users', audit: 'Audit log' },
  common: {
    actions: 'Actions', cancel: 'Cancel', close: 'Close', code: 'code', confirm: 'Please confirm', copied: 'Copied', copy: 'Copy', created: 'Created',
    delete: 'Delete', done: 'Done', no: 'No', yes: 'Yes', notFound: 'No such page', ok: 'OK', open: 'Open', pages: 'Pages', pageSize: 'Rows per page', refresh: 'Refresh',
    remove: 'Remove', search: 'Search', unreachable: 'The manager does not answer; retrying…',
  },
  login: { username: 'Username', password: 'Password', submit: 'Log in', expired: 'Your session has ended; please log in again' },
  user: {
    changePassword: 'Change password', logout: 'Log out', oldPassword: 'Current password', newPassword: 'New password', again: 'New password again',
    mismatch: 'The new passwords differ', passwordChanged: 'Password changed; please log in again',
    passwordRule: '8 to 72 bytes (UTF-8)',
  },
  role: { admin: 'admin', operator: 'operator', viewer: 'viewer' },
  status: { online: 'online', offline: 'offline', pending: 'pending' },
  run: { unknown: 'unknown', running: 'running', stopped: 'stopped', failed: 'failed', '': '—' },
  deploy: { undeployed: 'undeployed', deploying: 'deploying', deployed: 'deployed', failed: 'failed' },
  jobState: { pending: 'pending', running: 'running', succeeded: 'succeeded', failed: 'failed' },
  jobType: { deploy_cluster: 'deploy cluster', deploy_node: 'deploy node', server_bootstrap: 'add server over SSH' },
  steps: { transfer: 'transfer', install: 'install', configure: 'configure', start: 'start', health: 'health', connect: 'connect', detect: 'detect', upload: 'upload agent', online: 'online' },
  stepState: { pending: 'pending', running: 'running', succeeded: 'done', failed: 'failed', skipped: 'skipped', cancelled: 'cancelled' },
  tokenStatus: { active: 'active', revoked: 'revoked', expired: 'expired', used: 'used up' },
  areas: { add: 'Add area', code: 'Code', name: 'Name', confirmDelete: 'Delete area {name}?' },
  servers: {
    add: 'Add server', installByHand: 'Install by hand (join token)', area: 'Area', allAreas: 'All areas', allStatus: 'All states', status: 'Agent',
    managerIp: 'Manager IP', hostname: 'Hostname', lastSeen: 'Last seen', platform: 'OS/arch', cpus: 'CPUs', cpu: 'CPU', memUsed: 'Memory',
    agentVersion: 'Agent version', ping: 'Ping', pong: 'round trip {ms} ms, agent {v}', facts: 'Details', dataIp: 'Data IP', sshPort: 'SSH port',
    account: 'Account', programDir: 'Program dir', dataDir: 'Data dir', clusters: 'Clusters', memory: 'Memory free/total', disk: 'Disk free/total',
    exporter: 'Metrics reported', confirmDelete: 'Delete server {ip}? Its agent certificate is revoked.', auth: 'Authentication', byPassword: 'SSH password',
    byKey: 'SSH private key', byHand: 'Register only (install the agent by hand)', password: 'Password', privateKey: 'Private key (PEM)', passphrase: 'Passphrase',
    keepPassword: 'Keep credentials (encrypted)', dataIpHint: 'defaults to the manager IP', registering: 'Registering…', added: 'Server {ip} added: {status}',
    bootstrap: 'Installing the agent over SSH: {ip}', bootstrapOnline: 'Server {ip} added: its agent is online', bootstrapFailed: 'Server {ip} was not added: see the step that failed',
    background: 'Closing this dialog does not stop the install: follow it on the Jobs page.', back: 'Back to the form', finish: 'Done',
  },
  tokens: {
    create: 'Create join token', description: 'Description', maxUses: 'Uses', maxUsesHint: '0 is unlimited', ttlHours: 'Valid for (hours)', ttlHint: '0 never expires',
    defaultArea: 'default area', shownOnce: 'The token is shown only this once: copy it now.', runAsRoot: 'Run on the server, as root:', command: 'Install command',
    id: 'Token id', uses: 'Used/max', status: 'Status', expires: 'Expires', never: 'never', revoke: 'Revoke', confirmRevoke: 'Revoke token {id}?',
  },
  packages: {
    upload: 'Upload package', file: 'Package file', nameRule: 'File name: name-Vversion-arch.tar.gz (arch x86, arm or all)', uploading: 'Uploading {name}',
    progress: 'Upload progress', uploaded: '{name} uploaded', details: 'Details', components: 'Components', fileName: 'File', name: 'Name', version: 'Version',
    cpu: 'Arch', size: 'Size', enabled: 'Enabled', confirmDelete: 'Delete package {name}?',
  },
  clusters: {
    create: 'Create cluster', name: 'Name', description: 'Description', package: 'Package', samePackage: 'the package above', packageFor: 'package for {c}',
    zkList: 'Coordinators (zkList)', storageList: 'Storage (storageList)', brokerList: 'Brokers (brokerList)', addNode: 'Add node',
    server: 'Pick a server', serverOf: 'server of {n}', port: 'Port', portDefault: 'port (default)', programDir: 'Program dir', dataDir: 'Data dir',
    nodeCount: '{n} nodes', created: 'Cluster {name} created with {n} nodes', nodes: 'Nodes', components: 'Components',
    confirmDelete: 'Delete cluster {name}? Every node is stopped and its dirs removed.', deleted: 'Cluster {name} deleted', notCleanedTitle: 'Nodes not cleaned',
    notCleanedText: 'These nodes could not be cleaned: queued ones are cleaned when their agent reconnects, the others stay on their host.', reason: 'Reason', queued: 'Queued',
  },
  nodes: {
    node: 'Node', component: 'Component', server: 'Server:port', deployStatus: 'Deploy', runStatus: 'Run state', restarts: 'Restarts', started: 'Started',
    config: 'Config', deploy: 'Deploy', deployAll: 'Deploy all', start: 'Start', stop: 'Stop',
    restart: 'Restart', log: 'Log', logOf: 'Log of {n}', follow: 'Follow', emptyLog: '(empty log)', cmdDone: '{n} {cmd}: {status}, pid {pid}',
  },
  sync: {
    s0: 'in sync', s1: 'restart', s2: 'unknown', s3: 'not applied',
    hint1: 'The draft differs from the node\'s file: publish (flush) to apply it with a restart', hint2: 'The last apply was cut short: the node has the old or the new file; publish again', hint3: 'No config applied yet (not deployed)',
  },
  jobs: { job: 'Job', progress: 'Deployment progress', type: 'Type', state: 'State', by: 'By', reason: 'Reason', watch: 'Watch', cluster: 'Cluster', finished: 'Finished', target: 'Target', server: 'Server' },
  overview: {
    servers: 'Servers', byArea: 'Servers by area and agent state', fleetTrend: 'Fleet average usage (%)', reporting: '{n} reporting, {up} up', cpu: 'CPU', memory: 'Memory',
    disk: 'Disk', cpuHist: 'CPU usage (servers)', memHist: 'Memory usage (servers)', diskHist: 'Disk usage (servers)', clusters: 'Clusters and node states',
    jobs: 'Deployment jobs ({n} running)',
  },
  consumers: {
    about: 'Third-party apps read and change configuration through the Apollo-compatible Open API (/openapi/v1): app = cluster, namespace = config file, cluster = default or a node.',
    add: 'Add third-party app', appId: 'App id', name: 'Name', owner: 'Owner', orgId: 'Org id', orgName: 'Org name', ownerName: 'Owner', ownerEmail: 'Owner email',
    ttlDays: 'Valid for (days)', token: 'Token', confirmRevoke: 'Revoke the token of {name}?', grants: 'Grants', grantsOf: 'Grants of {name}', cluster: 'Cluster (appId)',
    namespace: 'Config file (namespace)', scope: 'Scope (cluster)', rights: 'Rights', all: 'all', allNamespaces: 'every config file', allScopes: 'all (default and each node)',
    modify: 'modify', release: 'release', read: 'read', addGrant: 'Add a grant',
  },
  config: {
    title: 'Configuration', file: 'Config file', apply: 'Deploy to apply', confirmApply: 'Deploy the cluster: nodes whose config changed get the new files and restart; the others stay as they are. Go on?',
    layer: 'Cluster layer', layerHint: 'every node of the component', node: 'Node', nodeHint: 'the node\'s effective file', add: 'Add item', addOwn: 'Add a key of the node\'s own',
    key: 'Key', value: 'Value', describes: 'Description', on: 'On', source: 'Source', edit: 'Edit', overrideShort: 'Override', reset: 'Reset', src: { cluster: 'cluster', node: 'node' },
    addLayer: 'Add a cluster layer item', editLayer: 'Edit cluster layer item {key}', addNode: 'Add a key of the node\'s own', override: 'Override {key} on the node',
    confirmDelete: 'Delete item {key}?', confirmReset: 'Reset {key} to the cluster layer\'s value?',
  },
  releases: {
    title: 'Releases', publish: 'Publish', diff: 'Compare the two picked', rollingRestart: 'Rolling restart of {c}', pick: 'Pick', kind: 'Kind', name: 'Title', comment: 'Comment',
    rollback: 'Roll back to this', unchanged: 'Every node has this config already: nothing to publish', draftVsReleased: 'The draft against the latest release:', change: 'Change', added: 'added',
    changed: 'changed', removed: 'removed', released: 'Released', draft: 'Draft', batchSize: 'Nodes per batch', failureBudget: 'Failures allowed', detailOf: 'Release #{n}',
    diffOf: 'Release #{a} against #{b}',
  },
  releaseKind: { deploy: 'deploy', flush: 'flush', rollout: 'rollout', rollback: 'rollback' },
  releaseState: { pending: 'pending', applying: 'applying', applied: 'applied', failed: 'failed', unchanged: 'unchanged', restored: 'restored', interrupted: 'interrupted', cancelled: 'cancelled' },
  users: { add: 'Add user', role: 'Role', confirmDelete: 'Delete user {name}?' },
  audit: { user: 'User', method: 'Method', path: 'Path', time: 'Time', from: 'From', to: 'To', result: 'HTTP/code', ip: 'Address', detail: 'Detail' },
}

const LOCALE_KEY = 'admq.locale'
export type Locale = 'zh-CN' | 'en'

function initial(): Locale {
  const saved = localStorage.getItem(LOCALE_KEY)
  if (saved === 'zh-CN' || saved === 'en') return saved
  return (navigator.languages ?? [navigator.language]).some((l) => l.toLowerCase().startsWith('zh')) ? 'zh-CN' : 'en'
}

// Keys built from API values (a job type, a run state): an unknown value
// shows as itself. A missing static key is an error the browser tests see.
const dynamic = ['releaseKind.', 'releaseState.', 'config.src.', 'run.', 'deploy.', 'jobState.', 'jobType.', 'steps.', 'stepState.', 'tokenStatus.', 'status.', 'role.']

export const i18n = createI18n({
  legacy: false,
  locale: initial(),
  fallbackLocale: 'en',
  messages: { 'zh-CN': zh, en },
  missingWarn: false,
  fallbackWarn: false,
  missing: (_locale, key) => {
    if (dynamic.some((p) => key.startsWith(p))) return key.slice(key.indexOf('.') + 1)
    console.error('missing translation: ' + key)
    return key
  },
})

export function setLocale(l: string) {
  const v: Locale = l === 'zh-CN' ? 'zh-CN' : 'en'
  i18n.global.locale.value = v
  localStorage.setItem(LOCALE_KEY, v)
  document.documentElement.lang = v
}
document.documentElement.lang = i18n.global.locale.value
