package fleetmetrics

import (
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The fleet scrape is written straight in Prometheus's text format from the
// stored reports: a scrape of 10,000 servers is about 400,000 series, and
// going through prometheus.Metric values (as Collect does for tests and
// linting) costs about 33 KB of garbage and 0.14 ms per server; writing
// them costs neither (BenchmarkWriteText).

// family is one metric family of the scrape and how to write its series
// for one server.
type family struct {
	name, help, typ string
	// upOnly: written for every server, up or not; else only for servers
	// that are up.
	always bool
	write  func(b []byte, e *entry, now time.Time, up bool, line lineFunc) []byte
}

// lineFunc appends one series: the family's name, the server's labels, the
// extra labels and the value.
type lineFunc func(b []byte, e *entry, v float64, extra pairs) []byte

// pairs are up to three extra labels, in name order; a value array, so
// that writing a series allocates nothing.
type pairs struct {
	n     int
	names [3]string
	vals  [3]string
}

func gaugeOf(get func(*Report) float64) func([]byte, *entry, time.Time, bool, lineFunc) []byte {
	return func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
		return line(b, e, get(&e.report), pairs{})
	}
}

var families = func() []family {
	fs := []family{
		{name: "up", typ: "gauge", always: true, write: func(b []byte, e *entry, _ time.Time, up bool, line lineFunc) []byte {
			return line(b, e, boolFloat(up), pairs{})
		}},
		{name: "last_report_timestamp_seconds", typ: "gauge", always: true, write: func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
			return line(b, e, float64(e.received.UnixMilli())/1e3, pairs{})
		}},
		{name: "cpu_usage_ratio", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return r.CPUUsage })},
		{name: "cpus", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return float64(r.CPUCount) })},
		{name: "load1", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return r.Load1 })},
		{name: "load5", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return r.Load5 })},
		{name: "load15", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return r.Load15 })},
		{name: "memory_total_bytes", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return float64(r.MemoryTotal) })},
		{name: "memory_available_bytes", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return float64(r.MemoryAvailable) })},
		{name: "memory_used_bytes", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return float64(r.MemoryUsed) })},
		{name: "swap_total_bytes", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return float64(r.SwapTotal) })},
		{name: "swap_used_bytes", typ: "gauge", write: gaugeOf(func(r *Report) float64 { return float64(r.SwapUsed) })},
	}
	fsFamily := func(name string, get func(Filesystem) uint64) family {
		return family{name: name, typ: "gauge", write: func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
			for _, f := range e.report.Filesystems {
				b = line(b, e, float64(get(f)), pairs{n: 3, names: [3]string{"device", "fstype", "mountpoint"}, vals: [3]string{f.Device, f.FSType, f.Path}})
			}
			return b
		}}
	}
	netFamily := func(name string, get func(Interface) uint64) family {
		return family{name: name, typ: "counter", write: func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
			for _, n := range e.report.Network {
				b = line(b, e, float64(get(n)), pairs{n: 1, names: [3]string{"device"}, vals: [3]string{n.Device}})
			}
			return b
		}}
	}
	fs = append(fs,
		fsFamily("filesystem_size_bytes", func(f Filesystem) uint64 { return f.Total }),
		fsFamily("filesystem_free_bytes", func(f Filesystem) uint64 { return f.Free }),
		fsFamily("filesystem_used_bytes", func(f Filesystem) uint64 { return f.Used }),
		netFamily("network_receive_bytes_total", func(n Interface) uint64 { return n.RxBytes }),
		netFamily("network_transmit_bytes_total", func(n Interface) uint64 { return n.TxBytes }),
		netFamily("network_receive_packets_total", func(n Interface) uint64 { return n.RxPackets }),
		netFamily("network_transmit_packets_total", func(n Interface) uint64 { return n.TxPackets }),
		netFamily("network_receive_errors_total", func(n Interface) uint64 { return n.RxErrors }),
		netFamily("network_transmit_errors_total", func(n Interface) uint64 { return n.TxErrors }),
		family{name: "process_up", typ: "gauge", write: func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
			for _, p := range e.report.Processes {
				b = line(b, e, boolFloat(p.Running), pairs{n: 1, names: [3]string{"node"}, vals: [3]string{p.Name}})
			}
			return b
		}},
		family{name: "process_cpu_seconds_total", typ: "counter", write: func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
			for _, p := range e.report.Processes {
				if p.Running {
					b = line(b, e, p.CPUSeconds, pairs{n: 2, names: [3]string{"node", "pid"}, vals: [3]string{p.Name, p.pid()}})
				}
			}
			return b
		}},
		family{name: "process_resident_memory_bytes", typ: "gauge", write: func(b []byte, e *entry, _ time.Time, _ bool, line lineFunc) []byte {
			for _, p := range e.report.Processes {
				if p.Running {
					b = line(b, e, float64(p.RSS), pairs{n: 2, names: [3]string{"node", "pid"}, vals: [3]string{p.Name, p.pid()}})
				}
			}
			return b
		}},
	)
	// The help texts are the collector's (allDescs made them), so both
	// ways say the same.
	_ = allDescs
	for i := range fs {
		fs[i].help = helpOf[fs[i].name]
	}
	slices.SortFunc(fs, func(a, b family) int { return strings.Compare(a.name, b.name) })
	return fs
}()

// serverLabelParts are a server's labels written for the text format, in
// the order the label names sort: area, then the extra labels before
// "hostname", then hostname and manager_ip, then the extra labels after,
// then server.
type serverLabelParts struct {
	area, middle, server string
}

func labelParts(labels []string) serverLabelParts {
	// labels are in serverLabels order: server, manager_ip, hostname, area.
	part := func(pairs ...string) string {
		var b []byte
		for i := 0; i+1 < len(pairs); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, pairs[i], pairs[i+1])
		}
		return string(b)
	}
	return serverLabelParts{
		area:   part("area", labels[3]),
		middle: part("hostname", labels[2], "manager_ip", labels[1]),
		server: part("server", labels[0]),
	}
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func appendHelp(b []byte, h string) []byte {
	for i := 0; i < len(h); i++ {
		switch c := h[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

// WriteText writes every server's series in Prometheus's text exposition
// format (version 0.0.4), as Collect gives them.
func (s *Store) WriteText(w io.Writer) error {
	now := s.cfg.Now()
	entries := s.snapshot()
	up := make([]bool, len(entries))
	for i, e := range entries {
		up[i] = s.fresh(e, now)
	}
	var name string
	// extra pairs come in name order; those before "hostname" go between
	// area and hostname, the others between manager_ip and server.
	line := func(b []byte, e *entry, v float64, extra pairs) []byte {
		b = append(b, name...)
		b = append(b, '{')
		b = append(b, e.parts.area...)
		i := 0
		for ; i < extra.n && extra.names[i] < "hostname"; i++ {
			b = append(b, ',')
			b = appendLabel(b, extra.names[i], extra.vals[i])
		}
		b = append(b, ',')
		b = append(b, e.parts.middle...)
		for ; i < extra.n; i++ {
			b = append(b, ',')
			b = appendLabel(b, extra.names[i], extra.vals[i])
		}
		b = append(b, ',')
		b = append(b, e.parts.server...)
		b = append(b, '}', ' ')
		b = appendValue(b, v)
		return append(b, '\n')
	}
	buf := make([]byte, 0, 64<<10)
	for _, f := range families {
		name = "admq_node_" + f.name
		buf = append(buf, "# HELP "...)
		buf = append(buf, name...)
		buf = append(buf, ' ')
		buf = appendHelp(buf, f.help)
		buf = append(buf, "\n# TYPE "...)
		buf = append(buf, name...)
		buf = append(buf, ' ')
		buf = append(buf, f.typ...)
		buf = append(buf, '\n')
		for i, e := range entries {
			if !f.always && !up[i] {
				continue
			}
			buf = f.write(buf, e, now, up[i], line)
			if len(buf) >= 48<<10 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

// Handler serves WriteText, at most maxInFlight scrapes at a time (more
// get 503). It is gzipped only when the query asks for it with gzip=1 and
// the client accepts it: at 10,000 servers gzip makes the 48 MB scrape
// 4 MB but costs about 0.35 s of CPU (BenchmarkWriteTextGzip10000), more
// than the rest of the scrape.
func (s *Store) Handler(maxInFlight int) http.Handler {
	sem := make(chan struct{}, max(1, maxInFlight))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			http.Error(w, "too many fleet scrapes at once; try again", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		var out io.Writer = w
		if r.URL.Query().Get("gzip") == "1" && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			defer gz.Close()
			out = gz
		}
		_ = s.WriteText(out) // a client that went away: nothing to tell it
	})
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func (p Process) pid() string { return strconv.Itoa(int(p.PID)) }
