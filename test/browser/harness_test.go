package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// artifacts is where screenshots go (git-ignored; the README names it).
const artifacts = "artifacts"

// stepTimeout bounds one browser action or wait.
const stepTimeout = 30 * time.Second

// browser is one Chromium tab on the console of a manager. Everything the
// page reports as going wrong — console errors, uncaught exceptions,
// Chromium's own errors (CSP violations among them), failed requests and
// HTTP errors — is collected, and the test fails on it at the end.
type browser struct {
	t     testing.TB
	ctx   context.Context
	base  string
	shots string
	nshot int

	mu       sync.Mutex
	problems []string
	// expected are URL parts whose HTTP errors a step provoked on purpose.
	expected []string
}

// newBrowser starts Chromium headless with a fresh profile and the
// network features of a desktop browser off, its UI language lang.
func newBrowser(t testing.TB, base, lang string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", lang),
		chromedp.Flag("accept-lang", lang),
		chromedp.Env("LANGUAGE=" + lang),
		chromedp.WindowSize(1440, 1000),
	}
	b := &browser{t: t, base: base, shots: filepath.Join(artifacts, t.Name())}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := os.RemoveAll(b.shots); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	if err == nil {
		_, err = chromedp.Call(ctx, log.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}})
	}
	if err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	return b
}

func (b *browser) listen(ev any) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.problem("console.%s: %s", e.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problem("uncaught exception: %s", msg)
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError && !b.isExpected(e.Entry.URL) {
			b.problem("chromium %s error: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
		}
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 && !b.isExpected(e.Response.URL) {
			b.problem("HTTP %d %s", int(e.Response.Status), e.Response.URL)
		}
	case *network.EventLoadingFailed:
		if !e.Canceled {
			b.problem("request failed: %s (%s)", e.ErrorText, e.Type)
		}
	}
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *browser) isExpected(url string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.expected {
		if strings.Contains(url, e) {
			return true
		}
	}
	return false
}

// expect lets HTTP errors of URLs containing part pass until the returned
// func is called.
func (b *browser) expect(part string) func() {
	b.mu.Lock()
	b.expected = append(b.expected, part)
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, e := range b.expected {
			if e == part {
				b.expected = append(b.expected[:i], b.expected[i+1:]...)
				return
			}
		}
	}
}

// forget drops the problems so far that contain any of parts: the ones a
// step provoked on purpose.
func (b *browser) forget(parts ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.problems[:0]
	for _, p := range b.problems {
		if !slices.ContainsFunc(parts, func(s string) bool { return strings.Contains(p, s) }) {
			kept = append(kept, p)
		}
	}
	b.problems = kept
}

// noProblems fails the test with every problem the page reported so far.
func (b *browser) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	p := b.problems
	b.problems = nil
	b.mu.Unlock()
	if len(p) > 0 {
		b.t.Errorf("the page reported %d problem(s):\n  %s", len(p), strings.Join(p, "\n  "))
	}
}

// run runs actions, failing the test after stepTimeout.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + slug(what))
		b.t.Fatalf("%s: %v\nproblems so far: %v", what, err, b.problems)
	}
}

// eval evaluates expr in the page and returns its value.
func eval[T any](b *browser, what, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.shot("failed-" + slug(what))
		b.t.Fatalf("%s: %v\nproblems so far: %v", what, err, b.problems)
	}
	return v
}

// try evaluates expr in the page within ctx.
func try[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// visit opens path of the console and waits until sel is visible.
func (b *browser) visit(path, sel string) {
	b.t.Helper()
	b.run("visit "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// click clicks, with the mouse, the first element sel matches that the
// mouse can reach (not one hidden behind another, as tables keep copies).
func (b *browser) click(sel string) {
	b.t.Helper()
	b.pick(sel, "")
}

// fill types value into the input sel (or the input inside it), replacing
// what it held.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	in := sel + ", " + sel + " input, " + sel + " textarea"
	b.run("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	ok := eval[bool](b, "fill "+sel, fmt.Sprintf(`(() => {
			const el = [...document.querySelectorAll(%q)].find(e => e.tagName === 'INPUT' || e.tagName === 'TEXTAREA');
			if (!el) return false;
			el.focus(); el.select && el.select();
			return true })()`, in))
	if !ok {
		b.t.Fatalf("fill %s: no input there", sel)
	}
	b.run("type into "+sel, chromedp.KeyEvent(kb.Delete), chromedp.KeyEvent(value))
}

// pick marks the visible element that matches sel and whose text contains
// text, then clicks it with the mouse: for dropdown options, buttons by
// label, rows.
func (b *browser) pick(sel, text string) {
	b.t.Helper()
	err := b.poll(stepTimeout, func(ctx context.Context) (bool, error) {
		return try[bool](ctx, fmt.Sprintf(`(() => {
			document.querySelectorAll('[data-pick]').forEach(e => e.removeAttribute('data-pick'));
			const reachable = (e) => {
				if (!e.getClientRects().length) return false;
				e.scrollIntoView({block: 'nearest', inline: 'nearest'});
				const r = e.getBoundingClientRect();
				const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
				return !!hit && (hit === e || e.contains(hit));
			};
			const el = [...document.querySelectorAll(%q)].find(e => e.textContent.includes(%q) && reachable(e));
			if (!el) return false;
			el.setAttribute('data-pick', '1');
			return true })()`, sel, text))
	})
	if err != nil {
		b.shot("failed-pick-" + slug(text))
		b.t.Fatalf("no visible %s with text %q: %v", sel, text, err)
	}
	b.run("click "+text, chromedp.Click(chromedp.CSS(`[data-pick="1"]`)))
}

// choose opens the Element Plus select sel and picks the option with
// text, waiting for the dropdown's opening animation, and checks that the
// select then shows it.
func (b *browser) choose(sel, text string) {
	b.t.Helper()
	wrapper := sel + " .el-select__wrapper"
	for try := 0; ; try++ {
		b.click(wrapper)
		time.Sleep(400 * time.Millisecond)
		b.pick(".el-select-dropdown__item", text)
		time.Sleep(300 * time.Millisecond)
		if strings.Contains(b.text(sel), text) {
			return
		}
		if try == 2 {
			b.shot("failed-choose-" + slug(text))
			b.t.Fatalf("select %s shows %q after picking %q", sel, b.text(sel), text)
		}
	}
}

// text returns the text of the first element sel matches ("" if none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, "read "+sel, fmt.Sprintf(`(document.querySelector(%q)||{}).innerText || ''`, sel))
}

// waitText waits until the text of sel matches re, and returns it.
func (b *browser) waitText(sel string, re *regexp.Regexp, timeout time.Duration) string {
	b.t.Helper()
	var s string
	err := b.poll(timeout, func(ctx context.Context) (bool, error) {
		var err error
		s, err = try[string](ctx, fmt.Sprintf(`(document.querySelector(%q)||{}).innerText || ''`, sel))
		return re.MatchString(s), err
	})
	if err != nil {
		b.shot("failed-wait-" + slug(sel))
		b.t.Fatalf("waiting for %s to match %s (it reads %q): %v\nproblems so far: %v", sel, re, s, err, b.problems)
	}
	return s
}

// exists says whether a visible element matches sel.
func (b *browser) exists(sel string) bool {
	b.t.Helper()
	return eval[int](b, "count "+sel, fmt.Sprintf(`[...document.querySelectorAll(%q)].filter(e => e.getClientRects().length > 0).length`, sel)) > 0
}

// waitGone waits until no visible element matches sel.
func (b *browser) waitGone(sel string, timeout time.Duration) {
	b.t.Helper()
	err := b.poll(timeout, func(ctx context.Context) (bool, error) {
		n, err := try[int](ctx, fmt.Sprintf(`[...document.querySelectorAll(%q)].filter(e => e.getClientRects().length > 0).length`, sel))
		return n == 0, err
	})
	if err != nil {
		b.t.Fatalf("%s is still shown: %v", sel, err)
	}
}

// processRuns says whether a process with this pid exists.
func processRuns(pid int) bool { return syscall.Kill(pid, 0) == nil }

// poll calls f every 200ms until it says done, errs, or timeout passes.
func (b *browser) poll(timeout time.Duration, f func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		done, err := f(ctx)
		cancel()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as the next numbered PNG.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.nshot++
	p := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.nshot, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
	}
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(slugRE.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// axeViolation is one failed rule of an axe-core run.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// axeSource is axe-core's script from the console's node_modules (npm ci,
// which make console-check runs before the Go tests): the test injects it,
// nothing is fetched. Without it the accessibility pass is left out, and
// the test says so.
func axeSource(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "manager", "console", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Logf("NO ACCESSIBILITY PASS: axe-core is not installed (run npm ci in manager/console; make test does): %v", err)
		return ""
	}
	return string(b)
}

// axe runs axe-core's WCAG 2.1 A and AA rules on the page as it is and
// fails the test on every violation.
func (b *browser) axe(src, page string) {
	b.t.Helper()
	if src == "" {
		return
	}
	eval[bool](b, "inject axe-core", src+";true")
	out := eval[[]axeViolation](b, "axe "+page, `axe.run(document, {
			runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
			resultTypes: ['violations'],
		}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.slice(0, 5).map(n => ({target: n.target, html: n.html.slice(0, 160)}))})))`,
		chromedp.EvalAwaitPromise)
	for _, v := range out {
		js, _ := json.Marshal(v.Nodes)
		b.t.Errorf("accessibility, %s page: %s (%s): %s; at %s", page, v.ID, v.Impact, v.Help, js)
	}
}

// tab presses Tab until the focused element matches sel, at most n times.
func (b *browser) tab(sel string, n int) {
	b.t.Helper()
	for i := 0; i < n; i++ {
		b.run("tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](b, "focus", fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%q)`, sel)) {
			return
		}
	}
	at := eval[string](b, "focus", `document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : ''`)
	b.t.Fatalf("%d Tab presses did not reach %s; focus is on %s", n, sel, at)
}
