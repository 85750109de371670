package browser

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestConsoleChangePassword has a user change their own password through
// the user menu, in English, with the API's rule for a password shown: a
// wrong current password shows the API's refusal in the dialog, a new
// password too short shows the API's rule, two new passwords that differ
// are refused by the dialog; each leaves the password as it was, which the
// good change then proves by taking the same current password. A cancelled
// dialog opens again blank. After the change the console asks to log in
// again, the old password is refused there and the new one logs in.
func TestConsoleChangePassword(t *testing.T) {
	needBrowser(t)
	m := testenv.StartManager(t)
	const (
		user  = "pat"
		oldPw = "pat-secret-1"
		newPw = "pat-secret-2"
	)
	m.Client(t).OK(t, http.MethodPost, "/user", map[string]string{"username": user, "password": oldPw, "role": "operator"}, nil)
	b := newBrowser(t, "http://"+m.HTTPAddr(), "en")
	b.login(user, oldPw)

	open := func() {
		t.Helper()
		b.click("[data-test=user-menu]")
		b.pick(".el-dropdown-menu__item", "Change password")
		b.run("the dialog", chromedp.WaitVisible(chromedp.CSS("#pw-old")))
		// The API's rule is shown before anything is sent.
		b.waitText("[data-test=password-rule]", regexp.MustCompile(`^8 to 72 bytes \(UTF-8\)$`), stepTimeout)
	}
	submit := func(current, next, again string) {
		t.Helper()
		// The dialog moves the focus into itself once it has faded in, and
		// keys typed meanwhile land in the field it picks (seen on a busy
		// machine: the current password got the new one's last keys and
		// the good change was refused). What the fields hold is checked,
		// and typed again when the focus moved under the typing.
		want := current + "|" + next + "|" + again
		for try := 1; ; try++ {
			b.fill("#pw-old", current)
			b.fill("#pw-new", next)
			b.fill("#pw-again", again)
			typed := eval[string](b, "the dialog's fields", `['#pw-old', '#pw-new', '#pw-again'].map(s => document.querySelector(s).value).join('|')`)
			if typed == want {
				break
			}
			if try == 3 {
				t.Fatalf("the dialog's fields hold %q after 3 tries, want %q", typed, want)
			}
		}
		b.pick(".el-dialog__footer button", "OK")
	}
	dialogError := `.el-dialog .api-error`

	// A wrong current password: the API's message and code, in the dialog.
	open()
	allow := b.expect("/admq-manager/user/password")
	submit("not-my-password", newPw, newPw)
	b.waitText(dialogError, regexp.MustCompile(`the old password is wrong \(code 6 AUTHORIZE_FAILED\)`), stepTimeout)
	b.shot("password-wrong-current")
	// Too short: the API's rule, in the dialog.
	submit(oldPw, "short-1", "short-1")
	b.waitText(dialogError, regexp.MustCompile(`password[\s\S]*8 to 72 bytes[\s\S]*\(code 2 PARAM_INVALID\)`), stepTimeout)
	allow()
	b.forget("HTTP 401", "status of 401", "HTTP 400", "status of 400")
	b.noProblems()
	// Two new passwords that differ: refused before anything is sent.
	submit(oldPw, newPw, "pat-secret-3")
	b.waitText(dialogError, regexp.MustCompile(`^The new passwords differ$`), stepTimeout)
	b.shot("password-mismatch")
	if !b.exists("#pw-old") {
		t.Fatalf("the dialog closed after a refused change")
	}
	b.noProblems()
	// Cancelled, the dialog opens again blank: no password typed before
	// and no error are left in it.
	b.pick(".el-dialog__footer button", "Cancel")
	b.waitGone("#pw-old", stepTimeout)
	open()
	if left := eval[string](b, "the dialog's fields", `['#pw-old', '#pw-new', '#pw-again'].map(s => document.querySelector(s).value).join('')`); left != "" || b.exists(dialogError) {
		t.Errorf("reopened, the dialog holds %q and shows error %t", left, b.exists(dialogError))
	}

	// The good change, with the same current password: nothing above
	// changed it. The console then asks to log in again.
	submit(oldPw, newPw, newPw)
	b.run("back to the login page", chromedp.WaitVisible(chromedp.CSS("#login-username")))
	b.waitText(".el-message", regexp.MustCompile(`Password changed; please log in again`), stepTimeout)
	b.shot("password-changed")

	// The old password no longer logs in; the new one does.
	allow = b.expect("/admq-manager/login")
	b.fill("#login-username", user)
	b.fill("#login-password", oldPw)
	b.click("[data-test=login]")
	b.waitText(".api-error", regexp.MustCompile(`wrong username or password \(code 6 AUTHORIZE_FAILED\)`), stepTimeout)
	allow()
	b.forget("HTTP 401", "status of 401")
	if b.exists("[data-test=overview]") {
		t.Errorf("the old password logged in")
	}
	b.shot("password-old-refused")
	b.login(user, newPw)
	b.noProblems()
}

// login logs in on the console's login page and waits for the overview.
func (b *browser) login(user, password string) {
	b.t.Helper()
	b.visit("/login", "#login-username")
	b.fill("#login-username", user)
	b.fill("#login-password", password)
	b.click("[data-test=login]")
	b.run("the overview", chromedp.WaitVisible(chromedp.CSS("[data-test=overview]")))
}

// TestConsoleDeleteConfirmations deletes areas, servers, packages and
// clusters through their pages, in English: cancelling the confirmation
// keeps the row (also after a reload), confirming removes it (also after a
// reload), and a delete the API refuses — an area with a server, a server
// with a cluster's node, a package a cluster uses — shows the API's
// message and code and keeps the row.
func TestConsoleDeleteConfirmations(t *testing.T) {
	needBrowser(t)
	root := t.TempDir()
	m := testenv.StartManager(t)
	c := m.Client(t)
	for _, a := range []string{"keep", "gone", "busy"} {
		c.OK(t, http.MethodPost, "/area", map[string]string{"code": a + "-1", "area": "area " + a}, nil)
	}
	// Servers that wait for an agent: one to delete, one with nodes.
	const freeIP, busyIP = "127.0.72.2", "127.0.72.3"
	c.OK(t, http.MethodPost, "/server", map[string]any{"room": "keep-1", "managerIp": freeIP}, nil)
	c.OK(t, http.MethodPost, "/server", map[string]any{"room": "busy-1", "managerIp": busyIP}, nil)
	dir := t.TempDir()
	conf := workloads.Entry{Name: "conf/broker.properties", Data: []byte("greeting=hello\n")}
	used := c.UploadPackage(t, workloads.Build(t, dir, "admq-ui-V1.0-x86.tar", versioned(nodeManifest(18372), "1.0"), conf))
	c.UploadPackage(t, workloads.Build(t, dir, "admq-ui-V2.0-x86.tar", versioned(nodeManifest(18372), "2.0"), conf))
	for i, name := range []string{"keeper", "doomed"} {
		c.CreateCluster(t, testenv.NewCluster{Name: name, PackageID: used.ID, BrokerList: []testenv.ClusterNode{{
			ManagerIP: busyIP, ServerPort: 18372 + i,
			ProgramDir: filepath.Join(root, "opt/{cluster}/{nodeDir}"), DataDir: filepath.Join(root, "data/{cluster}/{nodeDir}"),
		}}})
	}

	b := newBrowser(t, "http://"+m.HTTPAddr(), "en")
	b.login("admin", testenv.AdminPassword)
	for _, p := range []struct {
		path, table      string
		keep, gone, busy string // rows: one that stays, one to delete, one the API keeps
		refusal          string // the API's message for busy
		deleted          string // what a done delete shows (else the toast Done)
	}{
		{"/areas", "[data-test=areas-table]", "area keep", "area gone", "area busy", `area is still used by servers or join tokens \(code 1265 AREA_IN_USE\)`, ""},
		{"/servers", "[data-test=servers-table]", "", freeIP, busyIP, `\(code 1266 SERVER_IN_USE\)`, ""},
		{"/packages", "[data-test=packages-table]", "", "admq-ui-V2.0-x86.tar", "admq-ui-V1.0-x86.tar", `\(code 1208 PACKAGE_IN_USE\)`, ""},
		// Its node's agent never came: the console lists it as queued.
		{"/clusters", "[data-test=clusters-table]", "keeper", "doomed", "", "",
			`Nodes not cleaned[\s\S]*` + regexp.QuoteMeta(busyIP) + `\s+agent offline: cleaned when it reconnects\s+Yes`},
	} {
		anchor := p.keep
		if anchor == "" {
			anchor = p.busy
		}
		b.visit(p.path, p.table)
		b.waitText(p.table, regexp.MustCompile(regexp.QuoteMeta(p.gone)), stepTimeout)

		// Cancel: the row stays, also after a reload.
		b.rowButton(p.table, p.gone, "Delete")
		b.pick(".el-message-box__btns button", "Cancel")
		b.waitGone(".el-message-box", stepTimeout)
		b.visit(p.path, p.table)
		b.waitText(p.table, regexp.MustCompile(regexp.QuoteMeta(p.gone)), stepTimeout)

		// Confirm: the row goes, also after a reload.
		b.rowButton(p.table, p.gone, "Delete")
		b.waitText(".el-message-box", regexp.MustCompile(regexp.QuoteMeta(p.gone)), stepTimeout)
		b.shot("confirm-" + slug(p.path))
		b.pick(".el-message-box__btns button", "OK")
		if p.deleted == "" {
			b.waitText(".el-message--success", regexp.MustCompile(`^Done$`), stepTimeout)
		} else {
			b.waitText(".el-dialog", regexp.MustCompile(p.deleted), stepTimeout)
			b.run("close the dialog", chromedp.KeyEvent(kb.Escape))
		}
		b.waitNoText(p.table, p.gone)
		b.visit(p.path, p.table)
		b.waitText(p.table, regexp.MustCompile(regexp.QuoteMeta(anchor)), stepTimeout)
		if s := b.text(p.table); strings.Contains(s, p.gone) {
			t.Errorf("%s after a reload still lists %s:\n%s", p.path, p.gone, s)
		}

		// Refused: the API's message, and the row stays.
		if p.busy != "" {
			allow := b.expect("/admq-manager/")
			b.rowButton(p.table, p.busy, "Delete")
			b.pick(".el-message-box__btns button", "OK")
			b.waitText(".el-message.api-error", regexp.MustCompile(p.refusal), stepTimeout)
			allow()
			b.forget("HTTP 409", "status of 409")
			b.shot("refused-" + slug(p.path))
			b.click(".el-message.api-error .el-message__closeBtn")
			b.waitGone(".el-message.api-error", stepTimeout)
			b.visit(p.path, p.table)
			b.waitText(p.table, regexp.MustCompile(regexp.QuoteMeta(p.busy)), stepTimeout)
		}
		b.noProblems()
	}
}

// versioned is m with version v.
func versioned(m manifest.Manifest, v string) manifest.Manifest {
	m.Version = v
	return m
}

// rowButton clicks the button labelled label in the row of table that
// reads row.
func (b *browser) rowButton(table, row, label string) {
	b.t.Helper()
	err := b.poll(stepTimeout, func(ctx context.Context) (bool, error) {
		return try[bool](ctx, fmt.Sprintf(`(() => {
			document.querySelectorAll('[data-row]').forEach(e => e.removeAttribute('data-row'));
			const tr = [...document.querySelectorAll(%q)].find(e => e.textContent.includes(%q) && e.getClientRects().length);
			if (!tr) return false;
			tr.setAttribute('data-row', '1');
			return true })()`, table+" tbody tr", row))
	})
	if err != nil {
		b.shot("failed-row-" + slug(row))
		b.t.Fatalf("no row %q in %s: %v", row, table, err)
	}
	b.pick(`[data-row="1"] button`, label)
}

// waitNoText waits until the text of sel no longer contains s.
func (b *browser) waitNoText(sel, s string) {
	b.t.Helper()
	var got string
	err := b.poll(stepTimeout, func(ctx context.Context) (bool, error) {
		var err error
		got, err = try[string](ctx, fmt.Sprintf(`(document.querySelector(%q)||{}).innerText || ''`, sel))
		return !strings.Contains(got, s), err
	})
	if err != nil {
		b.shot("failed-gone-" + slug(s))
		b.t.Fatalf("%s still reads %q: %v", sel, s, err)
	}
}
