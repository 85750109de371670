package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// The SSH servers of the add-server test, on loopback addresses of its
// own, and the prefix of the agent services a bootstrap installs there.
const (
	sshIP        = "127.0.32.10"
	sshIPWrong   = "127.0.32.11"
	sshServicePx = "admqbp-ui-"
)

// TestConsoleAddServerBySSH adds a server the seed's way through the
// console: the dialog's form with a private key and its passphrase, then
// the bootstrap's steps shown live (connect, detect, upload with its
// bytes, install, online) until the real agent the manager uploaded to a
// real sshd on loopback is online, in Chinese; then, in English, a wrong
// password that ends at the connect step with code 1253, and back to the
// form. Both dialogs pass axe-core.
func TestConsoleAddServerBySSH(t *testing.T) {
	needBrowser(t)
	testenv.NeedRoot(t, "adding a server over SSH (a real sshd and an agent service)")
	axeJS := axeSource(t)
	root := t.TempDir()
	testenv.RemoveAgentServices(t, sshServicePx, root)
	const passphrase = "ui-Key-Phrase-3"
	key, pub := testenv.NewSSHKey(t, passphrase)
	sd := testenv.StartSSHD(t, sshIP)
	sd.Authorize(t, "root", pub)
	wrong := testenv.StartSSHD(t, sshIPWrong)
	m := testenv.StartManager(t, func(c *manager.Config) {
		c.AgentDir = testenv.AgentDir(t, agentBin)
		c.AgentServiceName = sshServicePx + "{managerIp}"
	})
	b := newBrowser(t, "http://"+m.HTTPAddr(), "zh-CN")
	page := func(name string) {
		t.Helper()
		b.waitGone(".el-message", 15*time.Second)
		b.shot(name)
		b.axe(axeJS, name)
		b.noProblems()
	}
	b.visit("/login", "#login-username")
	b.fill("#login-username", "admin")
	b.fill("#login-password", testenv.AdminPassword)
	b.click("[data-test=login]")
	b.waitText("[data-test=overview]", regexp.MustCompile(`概览`), stepTimeout)

	// The form: key and passphrase, the sshd's port, dirs of the test's.
	b.visit("/servers", "[data-test=add-server]")
	b.click("[data-test=add-server]")
	b.fill("#srv-ip", sshIP)
	b.click("[data-test=auth-key]")
	b.fill("#srv-port", fmt.Sprint(sd.Port))
	b.paste("#srv-key", key)
	b.fill("#srv-pass", passphrase)
	b.fill("#srv-prog", filepath.Join(root, "opt"))
	b.fill("#srv-data", filepath.Join(root, "data"))
	b.shot("add-server-form")
	// Record every state of the steps the dialog shows, as it shows them.
	eval[bool](b, "watch the steps", `window.__steps = []; (function tick() {
		const s = [...document.querySelectorAll('[data-test=bootstrap-progress] [data-step]')]
			.map(e => e.dataset.step + ':' + e.dataset.state + ':' + (e.querySelector('.detail') || {}).textContent).join('|');
		if (s && window.__steps[window.__steps.length - 1] !== s) window.__steps.push(s);
		requestAnimationFrame(tick) })(); true`)
	b.click("[data-test=server-submit]")
	b.run("the bootstrap's steps", chromedp.WaitVisible(chromedp.CSS("[data-test=bootstrap-progress] [data-step=connect]")))
	b.waitText("[data-test=bootstrap-progress] [data-test=job-state]", regexp.MustCompile(`成功|失败`), 2*time.Minute)
	if s := b.text("[data-test=job-state]"); s != "成功" {
		t.Fatalf("the bootstrap ended %q:\n%s", s, b.text("[data-test=bootstrap-progress]"))
	}
	b.waitText("[data-test=bootstrap-result]", regexp.MustCompile(`服务器 `+regexp.QuoteMeta(sshIP)+` 已添加，代理在线`), stepTimeout)
	want := map[string]string{
		"connect": `连接\s+完成\s+logged in as root to ` + regexp.QuoteMeta(sshIP) + `:\d+; host key \S+ SHA256:\S+ recorded on first use`,
		"detect":  `检测\s+完成\s+linux/\w+, logged in as root`,
		"upload":  `上传代理\s+完成\s+sent admq-agent-linux-\w+ \(\d+ bytes\) to \S+ in \S+, [\d.]+ MB/s; sha256 checked on the server`,
		"install": `安装\s+完成\s+service admqbp-ui-127-0-32-10 installed and started`,
		"online":  `上线\s+完成\s+online \S+ after the service started`,
	}
	for _, step := range []string{"connect", "detect", "upload", "install", "online"} {
		sel := fmt.Sprintf("[data-test=bootstrap-progress] [data-step=%s]", step)
		if got := b.text(sel); !regexp.MustCompile(want[step]).MatchString(got) {
			t.Errorf("step %s reads %q, want %s", step, got, want[step])
		}
	}
	// The dialog showed the steps on the way, not only the end: some
	// frame had a step running, and the upload said its bytes.
	seen := eval[[]string](b, "read the steps seen", `window.__steps`)
	running, bytes := false, false
	for _, s := range seen {
		running = running || strings.Contains(s, ":running:")
		bytes = bytes || regexp.MustCompile(`upload:(running|succeeded):(sending|sent) admq-agent-linux-\w+`).MatchString(s)
	}
	if !running || !bytes || len(seen) < 3 {
		t.Errorf("the dialog showed %d states of the steps (a running step: %t, upload bytes: %t):\n%s", len(seen), running, bytes, strings.Join(seen, "\n"))
	}
	t.Logf("the add-server dialog showed %d successive states of the steps, first %q, last %q", len(seen), seen[0], seen[len(seen)-1])
	page("add-server-online")
	b.click("[data-test=bootstrap-close]")
	b.waitGone(".el-dialog", stepTimeout)
	b.waitText("[data-test=servers-table]", regexp.MustCompile(regexp.QuoteMeta(sshIP)+`[\s\S]*在线`), time.Minute)
	if _, err := os.Stat("/etc/init.d/" + sshServicePx + "127-0-32-10"); err != nil {
		if _, err2 := os.Stat("/etc/systemd/system/" + sshServicePx + "127-0-32-10.service"); err2 != nil {
			t.Errorf("no agent service installed on the host: %v", err)
		}
	}
	page("servers-ssh-added")

	// In English, a wrong password: the connect step fails with 1253 and
	// the server is not added; back to the form, which kept its values.
	b.choose("[data-test=lang]", "English")
	b.waitText(".aside", regexp.MustCompile(`Servers`), stepTimeout)
	b.click("[data-test=add-server]")
	b.fill("#srv-ip", sshIPWrong)
	b.click("[data-test=auth-password]")
	b.fill("#srv-port", fmt.Sprint(wrong.Port))
	b.fill("#srv-pw", "not-the-password")
	b.click("[data-test=server-submit]")
	b.waitText("[data-test=bootstrap-progress] [data-test=job-state]", regexp.MustCompile(`^(succeeded|failed)$`), 2*time.Minute)
	b.waitText("[data-test=job-error]", regexp.MustCompile(`SSH authentication failed[\s\S]*\(code 1253\)`), stepTimeout)
	b.waitText("[data-test=bootstrap-progress] [data-step=connect]", regexp.MustCompile(`connect\s+failed\s+SSH authentication failed`), stepTimeout)
	b.waitText("[data-test=bootstrap-progress] [data-step=online]", regexp.MustCompile(`online\s+cancelled\s+not run: connect failed`), stepTimeout)
	b.waitText("[data-test=bootstrap-result]", regexp.MustCompile(`Server `+regexp.QuoteMeta(sshIPWrong)+` was not added`), stepTimeout)
	page("add-server-failed-en")
	b.click("[data-test=bootstrap-back]")
	if v := eval[string](b, "the form's address", `document.querySelector('#srv-ip').value`); v != sshIPWrong {
		t.Errorf("back to the form, the address reads %q, want %s", v, sshIPWrong)
	}
	b.pick(".el-dialog__footer button", "Cancel")
	b.visit("/servers", "[data-test=servers-table]")
	b.waitText("[data-test=servers-table]", regexp.MustCompile(regexp.QuoteMeta(sshIP)), stepTimeout)
	if strings.Contains(b.text("[data-test=servers-table]"), sshIPWrong) {
		t.Errorf("the server whose bootstrap failed is listed:\n%s", b.text("[data-test=servers-table]"))
	}
	// The jobs page lists both bootstraps.
	b.visit("/jobs", "[data-test=jobs-table]")
	b.waitText("[data-test=jobs-table]", regexp.MustCompile(`add server over SSH[\s\S]*failed[\s\S]*add server over SSH[\s\S]*succeeded`), stepTimeout)
	page("jobs-bootstraps-en")
}

// paste puts text into the input or textarea sel as a paste would: one
// insertion, newlines kept.
func (b *browser) paste(sel, text string) {
	b.t.Helper()
	in := sel + ", " + sel + " input, " + sel + " textarea"
	b.run("focus "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	eval[bool](b, "focus "+sel, fmt.Sprintf(`(() => {
			const el = [...document.querySelectorAll(%q)].find(e => e.tagName === 'INPUT' || e.tagName === 'TEXTAREA');
			el.focus(); el.select && el.select(); return true })()`, in))
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
		b.t.Fatalf("paste into %s: %v", sel, err)
	}
}
