package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// Each test has loopback addresses of its own (Linux answers all of
// 127/8), so that its nodes' ports meet no other test's.
const (
	agentIP  = "127.0.71.1"
	nodePort = 18371
)

// nodeManifest is a broker that says it started, then sleeps; healthy
// while its port is... not needed: /bin/true.
func nodeManifest(port int) manifest.Manifest {
	return manifest.Manifest{
		ManifestVersion: 1, Name: "admq-ui", Version: "1.0", MqType: 3, Description: "a broker that sleeps, for the browser tests",
		Components: map[string]manifest.Component{"broker": {
			Start:       []string{"/bin/sh", "-c", "echo broker started with pid $$; exec sleep 3600"},
			ConfigFiles: []manifest.ConfigFile{{Name: "broker.properties", Path: "conf/broker.properties", Format: "properties"}},
			ServerPort:  port,
			Health:      manifest.Health{Command: []string{"/bin/true"}, TimeoutSeconds: 5, IntervalSeconds: 1, StartSeconds: 30},
		}},
	}
}

// TestConsoleOperatorJourney does, through the console only, what an
// operator does on a new manager: log in with the keyboard, create an
// area, create a join token and install an agent with the command shown,
// upload a package and watch its progress, create a cluster, deploy it and
// follow the job to the end, restart a node and see its pid change, tail
// its log, read the audit log, switch the language, survive a manager
// restart, and see a viewer's console without buttons that would be
// refused. Every page is screenshotted and checked with axe-core.
func TestConsoleOperatorJourney(t *testing.T) {
	needBrowser(t)
	axeJS := axeSource(t)
	root := t.TempDir()
	m := testenv.StartManager(t, func(c *manager.Config) { c.Tunnel.MetricsInterval = time.Second })
	b := newBrowser(t, "http://"+m.HTTPAddr(), "zh-CN")
	page := func(name string) {
		t.Helper()
		b.waitGone(".el-message", 15*time.Second) // toasts fade: let them go first
		b.shot(name)
		b.axe(axeJS, name)
		b.noProblems()
	}

	// Login, with the keyboard only; the browser asked for Chinese.
	b.visit("/", "#login-username")
	if got := b.text("h1"); got != "ADMQ 管控台" {
		t.Errorf("login page title %q in a zh-CN browser, want ADMQ 管控台", got)
	}
	page("login")
	b.tab("#login-username", 10)
	b.run("type the username", chromedp.KeyEvent("admin"))
	b.tab("#login-password", 3)
	b.run("type the password and Enter", chromedp.KeyEvent(testenv.AdminPassword), chromedp.KeyEvent(kb.Enter))
	b.waitText("[data-test=overview]", regexp.MustCompile(`概览`), stepTimeout)
	page("overview-empty")
	// The menu, by keyboard too.
	b.tab(`.nav-link[href="/areas"]`, 10)
	b.run("Enter on the menu", chromedp.KeyEvent(kb.Enter))
	b.run("the areas page", chromedp.WaitVisible(chromedp.CSS("[data-test=add-area]")))

	// An area.
	b.click("[data-test=add-area]")
	b.fill("#area-code", "east-1")
	b.fill("#area-name", "华东一区")
	b.click("[data-test=area-submit]")
	b.waitText("[data-test=areas-table]", regexp.MustCompile(`east-1[\s\S]*华东一区|华东一区[\s\S]*east-1`), stepTimeout)
	page("areas")

	// A join token; the command shown installs an agent in that area.
	b.visit("/servers", "[data-test=join-token]")
	b.click("[data-test=join-token]")
	b.fill("#tok-desc", "browser test agent")
	b.choose("[data-test=tok-area]", "华东一区")
	b.click("[data-test=token-submit]")
	b.run("wait for the join command", chromedp.WaitVisible(chromedp.CSS("textarea[data-test=join-command]")))
	join := eval[string](b, "read the join command", `document.querySelector('textarea[data-test=join-command]').value`)
	token := regexp.MustCompile(`--token (\S+)`).FindStringSubmatch(join)
	if !strings.HasPrefix(join, "admq-agent install --manager ") || token == nil {
		t.Fatalf("join command %q: want admq-agent install --manager … --token …", join)
	}
	if _, port, _ := strings.Cut(m.TunnelAddr(), ":"); !strings.Contains(join, ":"+port+" ") {
		t.Errorf("join command %q does not name the tunnel port %s", join, port)
	}
	b.shot("join-token")
	b.click("[data-test=copy-command]")
	b.pick(".el-dialog__footer button", "关闭")
	// The agent runs as an operator would start it on a server.
	testenv.StartAgent(t, agentBin, m.TunnelAddr(), testenv.AgentOptions{Token: token[1], AdvertiseIP: agentIP})
	// Live status: the list refreshes itself.
	b.waitText("[data-test=servers-table]", regexp.MustCompile(agentIP+`[\s\S]*在线`), time.Minute)
	b.click("[data-test=servers-table] .el-table__expand-icon")
	page("servers")

	// A package, uploaded with progress shown.
	pkgPath := workloads.Build(t, t.TempDir(), "admq-ui-V1.0-x86.tar", nodeManifest(nodePort),
		workloads.Entry{Name: "conf/broker.properties", Data: []byte("greeting=hello\nlisteners=PLAINTEXT://:9092\n")},
		workloads.Entry{Name: "lib/blob.bin", Random: 48 << 20})
	b.visit("/packages", "[data-test=upload]")
	// Record every value the progress bar shows while the file streams.
	eval[bool](b, "watch the progress bar", `window.__progress = []; (function tick() {
		const bar = document.querySelector('[data-test=upload-progress] [role=progressbar]');
		if (bar) window.__progress.push(+bar.getAttribute('aria-valuenow'));
		requestAnimationFrame(tick) })(); true`)
	b.run("choose the file", chromedp.SetUploadFiles(chromedp.CSS("#pkg-file"), []string{pkgPath}))
	b.waitText("[data-test=packages-table]", regexp.MustCompile(`admq-ui-V1.0-x86.tar`), time.Minute)
	seen := eval[[]int](b, "read the progress seen", `window.__progress`)
	if len(seen) == 0 {
		t.Errorf("no upload progress bar was shown")
	} else if last := seen[len(seen)-1]; last <= 0 {
		t.Errorf("upload progress values %v: want it to reach more than 0", seen)
	}
	t.Logf("upload progress bar showed %d frames, values %v…", len(seen), head(seen, 8))
	b.click("[data-test=packages-table] .el-table__expand-icon")
	b.waitText("[data-test=packages-table]", regexp.MustCompile(`broker`), stepTimeout)
	page("packages")

	// A cluster with one broker on the agent's server, dirs under the test's.
	b.visit("/clusters", "[data-test=create-cluster]")
	b.click("[data-test=create-cluster]")
	b.fill("#cl-name", "ui1")
	b.choose("[data-test=cluster-package]", "admq-ui-V1.0-x86.tar")
	b.click("[data-test=add-brokerList]")
	b.choose("[data-test=list-brokerList] [data-test=node-server]", agentIP)
	b.fill("[data-test=list-brokerList] [data-test=prog-dir]", filepath.Join(root, "opt/{cluster}/{nodeDir}"))
	b.fill("[data-test=list-brokerList] [data-test=data-dir]", filepath.Join(root, "data/{cluster}/{nodeDir}"))
	// The placeholders are shown expanded before the cluster is made.
	b.waitText("[data-test=expanded]", regexp.MustCompile(regexp.QuoteMeta(filepath.Join(root, "opt/ui1/broker-1"))), stepTimeout)
	b.shot("cluster-create")
	b.click("[data-test=cluster-submit]")
	b.waitText("[data-test=cluster-title]", regexp.MustCompile(`^ui1$`), stepTimeout)
	b.waitText("[data-test=nodes-table]", regexp.MustCompile(`broker-1`), stepTimeout)

	// Deploy it and follow the job's events to the end.
	b.click("[data-test=deploy-all]")
	b.waitText("[data-test=job-progress] [data-step=transfer]", regexp.MustCompile(`MB/s`), 2*time.Minute)
	b.waitText("[data-test=job-state]", regexp.MustCompile(`成功|失败`), 2*time.Minute)
	if s := b.text("[data-test=job-state]"); s != "成功" {
		t.Fatalf("deploy job ended %q:\n%s", s, b.text("[data-test=job-progress]"))
	}
	for _, step := range []string{"transfer", "install", "configure", "start", "health"} {
		if !b.exists(fmt.Sprintf(`[data-test=job-progress] [data-step=%s][data-state=succeeded]`, step)) {
			t.Errorf("step %s did not show as succeeded:\n%s", step, b.text("[data-test=job-progress]"))
		}
	}
	pidRE := regexp.MustCompile(`^\d+$`)
	pid := b.waitText("[data-test=nodes-table] [data-test=pid]", pidRE, stepTimeout)
	b.waitText("[data-test=nodes-table] [data-test=run-status]", regexp.MustCompile(`运行中`), stepTimeout)
	page("cluster-deployed")

	// Restart the node: a new pid.
	b.click("[data-test=nodes-table] [data-test=restart]")
	newPid := b.waitText("[data-test=nodes-table] [data-test=pid]", regexp.MustCompile(`^(?:\d+)$`), stepTimeout)
	for deadline := time.Now().Add(stepTimeout); newPid == pid && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		newPid = b.text("[data-test=nodes-table] [data-test=pid]")
	}
	if newPid == pid || !pidRE.MatchString(newPid) {
		t.Errorf("pid after restart %q, was %q: want a new pid", newPid, pid)
	}
	if p, _ := strconv.Atoi(newPid); p > 0 && !processRuns(p) {
		t.Errorf("pid %d the console shows runs no process", p)
	}
	b.shot("node-restarted")

	// Its log, followed.
	b.click("[data-test=nodes-table] [data-test=log]")
	b.waitText("pre[data-test=log]", regexp.MustCompile(`broker started with pid `+newPid), stepTimeout)
	page("node-log")
	b.run("close the log", chromedp.KeyEvent(kb.Escape))

	// Configuration: the cluster layer beside the node's file; a changed
	// item reaches the node's file on disk with the next deployment.
	brokerConf := filepath.Join(root, "opt/ui1/broker-1/conf/broker.properties")
	if b, err := os.ReadFile(brokerConf); err != nil || !strings.Contains(string(b), "greeting=hello") {
		t.Fatalf("the deployed %s: %q, %v; want greeting=hello", brokerConf, b, err)
	}
	b.click("[data-test=open-config]")
	b.waitText("[data-test=layer-items]", regexp.MustCompile(`greeting[\s\S]*hello`), stepTimeout)
	b.waitText("[data-test=node-items]", regexp.MustCompile(`greeting[\s\S]*hello[\s\S]*集群`), stepTimeout)
	page("config")
	b.click("[data-test=layer-items] [data-test=edit-layer-item][data-key=greeting]")
	b.fill("#item-value", "bonjour")
	b.click("[data-test=item-submit]")
	b.waitText("[data-test=layer-items]", regexp.MustCompile(`greeting[\s\S]*bonjour`), stepTimeout)
	b.waitText("[data-test=node-items]", regexp.MustCompile(`greeting[\s\S]*bonjour`), stepTimeout)
	// The node table says the node needs a restart for it.
	b.click(".page-title a[href^='/clusters/']")
	b.waitText("[data-test=nodes-table] [data-test=restart-required]", regexp.MustCompile(`需重启`), stepTimeout)
	b.shot("restart-required")
	b.click("[data-test=open-config]")
	b.waitText("[data-test=layer-items]", regexp.MustCompile(`greeting[\s\S]*bonjour`), stepTimeout)
	// A value the API refuses shows its message and code.
	b.click("[data-test=add-layer-item]")
	b.fill("#item-key", strings.Repeat("k", 129))
	b.fill("#item-value", "x")
	done := b.expect("/admq-manager/cluster/config")
	b.click("[data-test=item-submit]")
	b.waitText(".el-dialog .api-error", regexp.MustCompile(`(错误码|code) 2 PARAM_INVALID`), stepTimeout)
	done()
	b.forget("HTTP 400", "status of 400")
	b.run("close the dialog", chromedp.KeyEvent(kb.Escape))
	b.click("[data-test=apply-config]")
	b.pick(".el-message-box__btns button", "确定")
	b.waitText("[data-test=job-state]", regexp.MustCompile(`成功|失败`), 2*time.Minute)
	if s := b.text("[data-test=job-state]"); s != "成功" {
		t.Fatalf("applying the config ended %q:\n%s", s, b.text("[data-test=job-progress]"))
	}
	if b, err := os.ReadFile(brokerConf); err != nil || !strings.Contains(string(b), "greeting=bonjour") {
		t.Errorf("after the change was deployed %s reads %q, %v; want greeting=bonjour", brokerConf, b, err)
	}
	page("config-applied")

	// Publish a change as a release: its difference from the released
	// config first, then the rollout, then the file on disk.
	b.click("[data-test=layer-items] [data-test=edit-layer-item][data-key=greeting]")
	b.fill("#item-value", "salut")
	b.click("[data-test=item-submit]")
	b.waitText("[data-test=layer-items]", regexp.MustCompile(`greeting[\s\S]*salut`), stepTimeout)
	b.click("[data-test=publish]")
	b.waitText("[data-test=draft-diff]", regexp.MustCompile(`greeting[\s\S]*bonjour[\s\S]*salut`), stepTimeout)
	b.fill("#pub-title", "say salut")
	b.shot("publish")
	b.click("[data-test=publish-submit]")
	waitFile(t, brokerConf, "greeting=salut", 2*time.Minute)
	b.waitText("[data-test=job-state]", regexp.MustCompile(`^成功$`), time.Minute)
	b.waitText("[data-test=release-table]", regexp.MustCompile(`say salut`), stepTimeout)
	page("published")

	// The difference between the first release and the last.
	b.waitText("[data-test=release-table]", regexp.MustCompile(`say salut[\s\S]*已生效`), time.Minute)
	nums := eval[[]int](b, "release numbers", `[...document.querySelectorAll('[data-test=release-table] [data-test=release-number]')].map(e => +e.textContent)`)
	if len(nums) < 2 {
		t.Fatalf("releases %v: want at least the deploy's and the publish's", nums)
	}
	newest, oldest := nums[0], nums[len(nums)-1]
	b.click(fmt.Sprintf("[data-test=release-table] tbody tr:nth-child(%d) .el-checkbox", 1))
	b.click(fmt.Sprintf("[data-test=release-table] tbody tr:nth-child(%d) .el-checkbox", len(nums)))
	b.click("[data-test=diff]")
	b.waitText("[data-test=release-diff]", regexp.MustCompile(`greeting[\s\S]*hello[\s\S]*salut`), stepTimeout)
	page("release-diff")
	b.run("close the diff", chromedp.KeyEvent(kb.Escape))

	// Roll back to the release before: bonjour again on disk.
	b.click(fmt.Sprintf("[data-test=release-table] [data-test=rollback][data-number='%d']", newest-1))
	waitFile(t, brokerConf, "greeting=bonjour", 2*time.Minute)
	b.waitText("[data-test=job-state]", regexp.MustCompile(`^成功$`), time.Minute)
	b.waitText("[data-test=layer-items]", regexp.MustCompile(`greeting[\s\S]*bonjour`), stepTimeout)
	t.Logf("releases %d to %d; rolled back to %d", oldest, newest, newest-1)
	page("rolled-back")

	// A third-party app of the Open API: its token shown once, a grant.
	b.visit("/consumers", "[data-test=add-consumer]")
	b.click("[data-test=add-consumer]")
	b.fill("#cs-app", "ops-portal")
	b.fill("#cs-name", "运维门户")
	b.fill("#cs-org", "ops")
	b.fill("#cs-orgname", "运维部")
	b.fill("#cs-owner", "ops")
	b.fill("#cs-email", "ops@example.com")
	b.click("[data-test=consumer-submit]")
	b.run("wait for the token", chromedp.WaitVisible(chromedp.CSS("input[data-test=consumer-token]")))
	tok := eval[string](b, "read the token", `document.querySelector('input[data-test=consumer-token]').value`)
	if len(tok) < 20 {
		t.Errorf("consumer token %q: want a long secret", tok)
	}
	b.shot("consumer-token")
	b.pick(".el-dialog__footer button", "关闭")
	b.waitText("[data-test=consumers-table]", regexp.MustCompile(`ops-portal`), stepTimeout)
	b.click("[data-test=consumers-table] [data-test=grants]")
	b.choose("[data-test=grant-cluster]", "ui1")
	b.choose("[data-test=grant-namespace]", "broker.properties")
	b.click("[data-test=grant-submit]")
	b.waitText("[data-test=grants-table]", regexp.MustCompile(`ui1[\s\S]*broker.properties`), stepTimeout)
	page("consumer-grants")
	b.run("close the grants", chromedp.KeyEvent(kb.Escape))

	// The overview now has a server, a cluster and a job.
	b.visit("/overview", "[data-test=server-totals]")
	b.waitText("[data-test=server-totals]", regexp.MustCompile(`^1\b`), stepTimeout)
	b.waitText("[data-test=overview-clusters]", regexp.MustCompile(`ui1`), stepTimeout)
	b.waitText("[data-test=fleet-summary]", regexp.MustCompile(`1 台上报，1 台在线`), stepTimeout)
	page("overview")

	// Jobs.
	b.visit("/jobs", "[data-test=jobs-table]")
	b.waitText("[data-test=jobs-table]", regexp.MustCompile(`集群部署[\s\S]*集群部署`), stepTimeout)
	page("jobs")

	// The audit log, filtered to node commands.
	b.visit("/audit", "[data-test=audit-table]")
	b.fill("[data-test=audit-path]", "/admq/cmd")
	b.click("[data-test=audit-search]")
	// Only node commands: the restart, and no login or area.
	s := b.waitText("[data-test=audit-table]", regexp.MustCompile(`/admq-manager/admq/cmd[\s\S]*restart`), stepTimeout)
	for deadline := time.Now().Add(stepTimeout); (strings.Contains(s, "/login") || strings.Contains(s, "/area")) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		s = b.text("[data-test=audit-table]")
	}
	if strings.Contains(s, "/login") || strings.Contains(s, "/area") {
		t.Errorf("the audit log filtered to /admq/cmd shows other calls:\n%s", s)
	}
	page("audit")

	// Join tokens: the one the agent used is used up.
	b.visit("/tokens", "[data-test=tokens-table]")
	b.waitText("[data-test=tokens-table]", regexp.MustCompile(`browser test agent[\s\S]*已用完`), stepTimeout)
	page("tokens")

	// A viewer, to come back to.
	b.visit("/users", "[data-test=add-user]")
	b.click("[data-test=add-user]")
	b.fill("#user-name", "watcher")
	b.fill("#user-pw", "watcher-secret-1")
	b.choose("[data-test=user-role]", "只读")
	b.click("[data-test=user-submit]")
	b.waitText("[data-test=users-table]", regexp.MustCompile(`watcher[\s\S]*只读`), stepTimeout)
	page("users")

	// English.
	b.choose("[data-test=lang]", "English")
	b.waitText(".aside", regexp.MustCompile(`Overview[\s\S]*Clusters`), stepTimeout)
	b.visit("/clusters", "[data-test=clusters-table]")
	b.waitText("[data-test=clusters-table]", regexp.MustCompile(`ui1`), stepTimeout)
	page("clusters-en")

	// A manager restart: the console says it lost the manager, then goes
	// on with the same session.
	allow := b.expect("/admq-manager/")
	m.Stop()
	b.pick(".toolbar button", "Refresh")
	b.waitText(".offline-banner", regexp.MustCompile(`does not answer`), stepTimeout)
	b.shot("manager-stopped")
	m.Start()
	b.waitGone(".offline-banner", time.Minute)
	allow()
	b.mu.Lock()
	b.problems = nil // the requests refused while the manager was down
	b.mu.Unlock()
	b.visit("/clusters/"+clusterID(t, m), "[data-test=nodes-table]")
	b.waitText("[data-test=nodes-table] [data-test=run-status]", regexp.MustCompile(`running`), time.Minute)
	page("cluster-after-restart")

	// The viewer sees no button that would be refused.
	b.click("[data-test=user-menu]")
	b.pick(".el-dropdown-menu__item", "Log out")
	b.visit("/login", "#login-username")
	b.fill("#login-username", "watcher")
	b.fill("#login-password", "watcher-secret-1")
	b.click("[data-test=login]")
	b.waitText("[data-test=overview]", regexp.MustCompile(`Overview`), stepTimeout)
	for _, p := range []struct{ path, ready, forbidden string }{
		{"/areas", "[data-test=areas-table]", "[data-test=add-area]"},
		{"/servers", "[data-test=servers-table]", "[data-test=add-server], [data-test=join-token]"},
		{"/packages", "[data-test=packages-table]", "[data-test=upload]"},
		{"/clusters", "[data-test=clusters-table]", "[data-test=create-cluster]"},
		{"/clusters/" + clusterID(t, m), "[data-test=nodes-table] [data-test=log]", "[data-test=deploy-all], [data-test=restart], [data-test=deploy-node]"},
	} {
		b.visit(p.path, p.ready)
		if b.exists(p.forbidden) {
			t.Errorf("a viewer sees %s on %s", p.forbidden, p.path)
		}
		if b.exists(".el-table .el-button--danger") {
			t.Errorf("a viewer sees a delete button on %s", p.path)
		}
	}
	if b.exists(".aside a[href='/users'], .aside a[href='/audit']") || strings.Contains(b.text(".aside"), "Users") {
		t.Errorf("a viewer's menu offers admin pages: %q", b.text(".aside"))
	}
	page("viewer-cluster")
}

// waitFile waits until the file at path contains want.
func waitFile(t *testing.T, path, want string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, path+" to contain "+want, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), want)
	})
}

func head(v []int, n int) []int {
	if len(v) > n {
		return v[:n]
	}
	return v
}

// clusterID is the only cluster's id, from the API (for a URL the test
// types, as a user would paste one).
func clusterID(t *testing.T, m *testenv.Manager) string {
	t.Helper()
	var page struct {
		List []struct {
			ID string `json:"id"`
		} `json:"list"`
	}
	m.Client(t).OK(t, "GET", "/admq/cluster", nil, &page)
	if len(page.List) != 1 {
		t.Fatalf("clusters %+v: want one", page.List)
	}
	return page.List[0].ID
}
