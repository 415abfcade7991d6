package tests

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// chromeSlice is a call in a Chrome trace: its thread, name and times (us).
type chromeSlice struct {
	tid        int
	name       string
	start, end float64
}

// readChrome reads a Chrome trace back: its slices (B/E matched per
// thread, which must balance) and its threads' names.
func readChrome(t *testing.T, path string) ([]chromeSlice, map[int]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TraceEvents []struct {
			Ph   string  `json:"ph"`
			Name string  `json:"name"`
			TID  int     `json:"tid"`
			TS   float64 `json:"ts"`
			Args struct {
				Name string `json:"name"`
			} `json:"args"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	open := map[int][]chromeSlice{}
	var slices []chromeSlice
	names := map[int]string{}
	for _, e := range doc.TraceEvents {
		switch e.Ph {
		case "B":
			open[e.TID] = append(open[e.TID], chromeSlice{e.TID, e.Name, e.TS, 0})
		case "E":
			st := open[e.TID]
			if len(st) == 0 {
				t.Fatalf("an E event without its B in thread %d", e.TID)
			}
			s := st[len(st)-1]
			open[e.TID] = st[:len(st)-1]
			if s.end = e.TS; s.end < s.start {
				t.Errorf("%s ends before it starts", s.name)
			}
			slices = append(slices, s)
		case "M":
			if e.Name == "thread_name" {
				names[e.TID] = e.Args.Name
			}
		}
	}
	for tid, st := range open {
		if len(st) > 0 {
			t.Errorf("thread %d: %d slices never closed", tid, len(st))
		}
	}
	return slices, names
}

// lptrace record on a program whose profile is known
// (programs/record.py), on every interpreter: each format read back, its
// structure and numbers checked (the 0.3 s sleep, calls nested in their
// callers, a track per thread, balanced slices).
func TestRecord(t *testing.T) {
	prog := filepath.Join(programsDir, "record.py")
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			run := func(name string, extra ...string) string {
				out := filepath.Join(dir, name)
				args := append(append([]string{"record", "-o", out}, extra...), "--", py.Path, prog)
				r := lptrace(t, "", args...)
				if r.Code != 0 || !strings.Contains(r.Stderr, "lptrace: wrote "+out) {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				return out
			}
			near := func(got, want float64) bool { return got > want*0.98 && got < want*1.15 }

			slices, names := readChrome(t, run("trace.json"))
			var sleeper, outer *chromeSlice
			inner := 0
			for i, s := range slices {
				switch s.name {
				case "sleeper":
					sleeper = &slices[i]
				case "outer":
					outer = &slices[i]
				}
			}
			if sleeper == nil || outer == nil || !near(sleeper.end-sleeper.start, 300000) {
				t.Fatalf("sleeper %+v, outer %+v", sleeper, outer)
			}
			for _, s := range slices {
				if s.name == "inner" && s.tid == outer.tid {
					inner++
					if s.start < outer.start || s.end > outer.end {
						t.Errorf("inner %+v is not inside outer %+v", s, outer)
					}
				}
			}
			if inner != 1 || sleeper.start < outer.start || sleeper.end > outer.end {
				t.Errorf("%d calls of inner in outer's thread; sleeper %+v in outer %+v", inner, sleeper, outer)
			}
			var threads []string
			for _, n := range names {
				threads = append(threads, n)
			}
			if !strings.Contains(strings.Join(threads, ","), "worker-1") || !strings.Contains(strings.Join(threads, ","), "MainThread") {
				t.Errorf("threads %v", threads)
			}

			var ss struct {
				Shared struct {
					Frames []struct{ Name string } `json:"frames"`
				} `json:"shared"`
				Profiles []struct {
					Name   string
					Events []struct {
						Type  string
						Frame int
						At    int64
					}
				} `json:"profiles"`
			}
			data, _ := os.ReadFile(run("p.speedscope.json"))
			if err := json.Unmarshal(data, &ss); err != nil || len(ss.Profiles) < 2 {
				t.Fatalf("speedscope: %v, %d profiles", err, len(ss.Profiles))
			}
			slept := int64(0)
			for _, p := range ss.Profiles {
				var st []int
				var at []int64
				for _, e := range p.Events {
					if e.Type == "O" {
						st, at = append(st, e.Frame), append(at, e.At)
						continue
					}
					if len(st) == 0 || st[len(st)-1] != e.Frame {
						t.Fatalf("speedscope %s: unbalanced at frame %d", p.Name, e.Frame)
					}
					if ss.Shared.Frames[e.Frame].Name == "sleeper" {
						slept = e.At - at[len(at)-1]
					}
					st, at = st[:len(st)-1], at[:len(at)-1]
				}
			}
			if !near(float64(slept), 3e8) {
				t.Errorf("speedscope: sleeper took %d ns", slept)
			}

			// Perfetto's protobuf: whole packets (profile's tests read
			// them field by field), sleeper's name interned.
			data, _ = os.ReadFile(run("trace.pftrace"))
			packets := 0
			for b := data; len(b) > 0; packets++ {
				num, typ, n := protowire.ConsumeField(b)
				if n < 0 || num != 1 {
					t.Fatalf("perfetto: packet %d: field %d type %d: %v", packets, num, typ, protowire.ParseError(n))
				}
				b = b[n:]
			}
			if packets < 20 || !strings.Contains(string(data), "sleeper") {
				t.Errorf("perfetto: %d packets", packets)
			}

			// The flame graph: sleeper's box, its time in its tooltip, on
			// outer's.
			data, _ = os.ReadFile(run("flame.svg"))
			boxes := flameBoxes(t, data)
			var sb, ob *flameBox
			for i, b := range boxes {
				switch {
				case strings.HasPrefix(b.label, "sleeper ("):
					sb = &boxes[i]
				case strings.HasPrefix(b.label, "outer ("):
					ob = &boxes[i]
				}
			}
			if sb == nil || ob == nil {
				t.Fatalf("flame graph boxes: %v", boxes)
			}
			m := regexp.MustCompile(`: ([\d.]+) s`).FindStringSubmatch(sb.title)
			if v, _ := strconv.ParseFloat(m[1], 64); m == nil || !near(v, 0.3) {
				t.Errorf("sleeper's tooltip: %q", sb.title)
			}
			if sb.depth != ob.depth+1 || sb.x < ob.x || sb.x+sb.w > ob.x+ob.w+0.01 {
				t.Errorf("sleeper %+v is not on outer %+v", sb, ob)
			}
		})
	}
}

type flameBox struct {
	label, title string
	x, w         float64
	depth        int
}

// flameBoxes reads the boxes of an SVG flame graph (strict XML).
func flameBoxes(t *testing.T, data []byte) []flameBox {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(data)))
	var boxes []flameBox
	inTitle := false
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the SVG is not well-formed: %v", err)
			}
			return boxes
		}
		switch e := tok.(type) {
		case xml.StartElement:
			a := map[string]string{}
			for _, at := range e.Attr {
				a[at.Name.Local] = at.Value
			}
			if e.Name.Local == "g" && a["class"] == "f" {
				b := flameBox{label: a["data-label"]}
				b.x, _ = strconv.ParseFloat(a["data-x"], 64)
				b.w, _ = strconv.ParseFloat(a["data-w"], 64)
				b.depth, _ = strconv.Atoi(a["data-d"])
				boxes = append(boxes, b)
			}
			inTitle = e.Name.Local == "title" && len(boxes) > 0
		case xml.CharData:
			if inTitle {
				boxes[len(boxes)-1].title += string(e)
			}
		case xml.EndElement:
			inTitle = false
		}
	}
}

// A recording of a running program ends by Ctrl-C or --duration, and by
// the program's death: the file is written each time, whole.
func TestRecordEnds(t *testing.T) {
	py := newest(t)
	dir := t.TempDir()
	tg := startTarget(t, py, "calls")
	out := filepath.Join(dir, "ctrl-c.json")
	cmd := exec.Command(lptraceBin, "record", "-o", out, strconv.Itoa(tg.PID))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("lptrace record ignored Ctrl-C: %s", stderr.String())
	}
	ranPIDs.Store(cmd.Process.Pid, time.Now())
	if slices, _ := readChrome(t, out); len(slices) == 0 {
		t.Errorf("Ctrl-C: nothing recorded: %s", stderr.String())
	}
	hookGone(t, tg.PID, 2*time.Second)
	tg.waitTicks(t, 2, 5*time.Second)

	out = filepath.Join(dir, "duration.svg")
	if r := lptrace(t, "", "record", "--duration", "1", "-o", out, strconv.Itoa(tg.PID)); r.Code != 0 {
		t.Fatalf("--duration: exit %d: %s", r.Code, r.Stderr)
	}
	data, _ := os.ReadFile(out)
	if boxes := flameBoxes(t, data); len(boxes) < 2 {
		t.Errorf("--duration: %d boxes", len(boxes))
	}

	// The program kills itself mid-recording: what it did is in the file.
	out = filepath.Join(dir, "death.json")
	code := "import os, signal\ndef doomed():\n    os.kill(os.getpid(), signal.SIGKILL)\ndef before():\n    pass\nbefore()\ndoomed()\n"
	r := lptrace(t, "", "record", "-o", out, "--", py.Path, "-c", code)
	if r.Code != 128+9 && r.Code != -1 {
		t.Logf("status %d: %s", r.Code, r.Stderr)
	}
	slices, _ := readChrome(t, out)
	seen := map[string]bool{}
	for _, s := range slices {
		seen[s.name] = true
	}
	if !seen["before"] || !seen["doomed"] {
		t.Errorf("after SIGKILL: slices %v: %s", seen, r.Stderr)
	}
}

// Mistakes get one line and status 2.
func TestRecordUsage(t *testing.T) {
	for _, args := range [][]string{
		{"record", "1"},                                   // no -o
		{"record", "-o", "x.txt", "1"},                    // no format
		{"record", "-o", "x.svg", "--format", "png", "1"}, // unknown format
		{"record", "-o", "x.svg", "-c", "1"},              // a text-trace option
		{"record", "-o", "x.svg"},                         // no target
	} {
		r := lptrace(t, "", args...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 || !strings.HasPrefix(r.Stderr, "lptrace: ") {
			t.Errorf("lptrace %v: status %d, stderr %q", args, r.Code, r.Stderr)
		}
	}
}

// The HTML flame graph in a real browser (Debian's chromium, headless):
// its script runs (a search given in the link highlights sleeper and says
// what share of the time it covers), the boxes show the functions' names,
// and it draws (a screenshot).
func TestRecordFlameGraphInBrowser(t *testing.T) {
	browser := chromium(t)
	py := newest(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "flame.html")
	if r := lptrace(t, "", "record", "-o", out, "--", py.Path, filepath.Join(programsDir, "record.py")); r.Code != 0 {
		t.Fatalf("record: %d: %s", r.Code, r.Stderr)
	}
	dom := browse(t, browser, "--dump-dom", "file://"+out+"#search=^sleeper")
	m := regexp.MustCompile(`matched: ([\d.]+)%`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page's script did not search:\n%.2000s", dom)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 90 || v > 100 {
		t.Errorf("sleeper covers %s%% of the time, want about 99%%", m[1])
	}
	for _, name := range []string{">sleeper (", ">outer (", ">main (", "rgb(230,0,230)"} {
		if !strings.Contains(dom, name) {
			t.Errorf("the page lacks %q", name)
		}
	}
	png := filepath.Join(dir, "flame.png")
	browse(t, browser, "--window-size=1200,800", "--screenshot="+png, "file://"+out)
	if st, err := os.Stat(png); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot: %v", err)
	}
}

// chromium is the browser's path, or the test is skipped (.ci/run
// installs Debian's chromium).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium: apt-get install chromium")
	return ""
}

// browse runs the browser headless on a page; its stdout.
func browse(t *testing.T, browser string, args ...string) string {
	t.Helper()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.Command(browser, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish in 90 s: %s", browser, stderr.String())
	}
	if err != nil {
		t.Fatalf("%s %v: %v: %s", browser, args, err, stderr.String())
	}
	return string(out)
}

// lptrace record on a real program (Debian's aiohttp, idle in epoll_wait
// between requests): requests go on being answered while it records, the
// Chrome trace holds the handler coroutine with greeting() inside it,
// and the hook leaves at Ctrl-C.
func TestRealAiohttpRecord(t *testing.T) {
	pys := pythonsWith(t, "aiohttp")
	if len(pys) == 0 {
		t.Skip("no python3-aiohttp")
	}
	py := pys[len(pys)-1]
	tg := startProgram(t, py, "aiohttp_app.py")
	get := func(path string) string {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", tg.Port, path))
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	out := filepath.Join(t.TempDir(), "server.json")
	cmd := exec.Command(lptraceBin, "record", "-o", out, "--timeout", "10s", strconv.Itoa(tg.PID))
	stderrR, stderrW, _ := os.Pipe()
	cmd.Stderr = stderrW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderrW.Close()
	ranPIDs.Store(cmd.Process.Pid, time.Now())
	// Requests once it has attached (its first line).
	line := make([]byte, 200)
	n, _ := stderrR.Read(line)
	if !strings.Contains(string(line[:n]), "attached") {
		t.Fatalf("lptrace record: %s", line[:n])
	}
	var stderr strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&stderr, stderrR); close(copied) }()
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("r%d", i)
		if got := get("/hello/" + name); got != "hello "+name {
			t.Errorf("request %s while recorded: %q", name, got)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	<-copied
	if err != nil {
		t.Fatalf("lptrace record: %v: %s", err, stderr.String())
	}
	slices, _ := readChrome(t, out)
	inside := 0
	for _, h := range slices {
		if h.name != "hello" {
			continue
		}
		for _, g := range slices {
			if g.name == "greeting" && g.tid == h.tid && g.start >= h.start && g.end <= h.end {
				inside++
			}
		}
	}
	if inside < 40 {
		t.Errorf("%d calls of greeting inside a turn of hello, want about 50: %s", inside, stderr.String())
	}
	hookGone(t, tg.PID, 3*time.Second)
	if got := get("/hello/after"); got != "hello after" {
		t.Errorf("after the recording: %q", got)
	}
}
