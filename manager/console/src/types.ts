// Shapes of the API's data, as /admq-manager/openapi.json describes them.
export interface Area { id: string; code: string; area: string; createTime: string }
export interface Server {
  id: string; areaId: string; room: string; managerIp: string; dataIp: string; sshPort: number; account: string
  programDir: string; dataDir: string; agentStatus: 'online' | 'offline' | 'pending'; lastSeen: string | null
  agentVersion: string; hostname: string; os: string; arch: string; cpus: number; memoryTotal: number
  memoryAvailable: number; diskTotal: number; diskFree: number; serverExporterStatus: number; deployClusters: string
  createTime: string; facts: Record<string, unknown>
}
export interface ServerMetrics {
  serverId: string; managerIp: string; hostname: string; area: string; up: boolean; collectTime: string | null
  cpuUsage: number; cpuCount: number; load1: number; memoryTotal: number; memoryUsed: number; diskTotal: number; diskUsed: number
}
export interface FleetSummary {
  reporting: number; up: number; cpuUsage: number; memoryUsedRatio: number; diskUsedRatio: number
  cpuHistogram: number[]; memoryHistogram: number[]; diskHistogram: number[]
}
export interface Package {
  id: string; name: string; version: string; fileName: string; fileSize: string; cpu: string; effective: number
  sha256: string; components: string[]; createTime: string; mqType: number
}
export interface Cluster { id: string; name: string; description: string; nodeCount: number; components: string[]; createTime: string }
export interface NodeRow {
  id: string; clusterId: string; serverId: string; managerIp: string; dataIp: string; component: string; componentTypeStr: string
  serverPort: number; deployStatus: string; runStatus: string; pid: number; startTime: string | null; restarts: number; lastExit: string
  syncNodeConfigStatus: number; programDir: string; dataDir: string; nodeDir: string; myid: number; packageId: string
  configFiles: { id: string; name: string }[]
}
export interface Job {
  id: string; type: string; clusterId: string | null; serverId: string | null; nodeId: string | null; state: string; reason: string
  code: number; errorData: Record<string, unknown> | null; createdBy: string
  createTime: string; startTime: string | null; finishTime: string | null
}
export interface Step {
  id: string; jobId: string; nodeId: string | null; name: string; state: string; detail: string; startTime: string | null; finishTime: string | null
}
export interface User { id: string; username: string; role: string; createTime: string }
export interface Token {
  id: string; description: string; areaId: string | null; serverId: string | null; maxUses: number; uses: number; status: string
  expireTime: string | null; createdBy: string; createTime: string
}
export interface CreatedToken extends Token { token: string; caCertHash: string; joinCommand: string }
export interface AuditEntry {
  id: string; time: string; username: string; role: string; method: string; path: string; remoteIp: string; status: number; code: number; detail: string
}
export interface Consumer {
  id: string; appId: string; name: string; orgId: string; orgName: string; ownerName: string; ownerEmail: string
  status: string; expireTime: string | null; revokeTime: string | null; createdBy: string; createTime: string
}
export interface Grant {
  id: string; consumerId: string; appId: string; namespaceName: string; clusterName: string; modify: boolean; release: boolean
  createdBy: string; createTime: string
}
export interface ClusterFile {
  id: string; clusterId: string; component: string; name: string; path: string; format: string; target: string; packageId: string
}
export interface NodeFile {
  id: string; nodeId: string; clusterFileId: string; name: string; path: string; format: string; target: string
}
export interface ConfigItem {
  id: string; configKey: string; configValue: string; effective: number; describes: string; source: string
  clusterItemId: string | null; updateTime: string
}
