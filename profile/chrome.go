package profile

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/lptrace/lptrace/trace"
)

// The Chrome Trace Event format (JSON), which Perfetto's UI and
// chrome://tracing open: a track per thread, a slice per call (per turn of
// a generator or coroutine), written as the events come: B at a call, E
// at its return, at the hook's monotonic clock in microseconds; the names
// of processes and threads as metadata at the end.

type chrome struct {
	bw      *bufio.Writer
	opts    Options
	started bool
	names   map[*trace.Code]string // "name":"...","cat":"python" made once per function
}

func newChrome(w io.Writer, opts Options) *chrome {
	return &chrome{bw: bufio.NewWriterSize(w, 1<<16), opts: opts, names: map[*trace.Code]string{}}
}

func (c *chrome) begin() {
	if !c.started {
		c.started = true
		c.bw.WriteString(`{"displayTimeUnit":"ns","otherData":{"exporter":"lptrace","title":`)
		c.bw.Write(jsonText(c.opts.Title))
		c.bw.WriteString("},\"traceEvents\":[\n")
	} else {
		c.bw.WriteString(",\n")
	}
}

func jsonText(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// micros is ns as microseconds with three decimals.
func micros(b []byte, ns int64) []byte {
	b = strconv.AppendInt(b, ns/1000, 10)
	b = append(b, '.')
	r := ns % 1000
	return append(b, byte('0'+r/100), byte('0'+r/10%10), byte('0'+r%10))
}

func (c *chrome) event(t *threadSpans, ph byte, at int64) {
	c.begin()
	b := make([]byte, 0, 96)
	b = append(b, `{"ph":"`...)
	b = append(b, ph, '"', ',')
	b = append(b, `"pid":`...)
	b = strconv.AppendInt(b, int64(pid(t)), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, int64(t.thread.TID), 10)
	b = append(b, `,"ts":`...)
	b = micros(b, at)
	c.bw.Write(b)
}

func (c *chrome) open(t *threadSpans, code *trace.Code, at int64, call bool, args string) {
	c.event(t, 'B', at)
	name, ok := c.names[code]
	if !ok {
		name = `,"cat":"python","name":` + string(jsonText(safe(code.Name))) +
			`,"args":{"file":` + string(jsonText(safe(code.File))) + `,"line":` + strconv.Itoa(code.Line)
		c.names[code] = name
	}
	c.bw.WriteString(name)
	if !call {
		c.bw.WriteString(`,"resumed":true`)
	}
	if args != "" {
		a, _, _ := strings.Cut(args, "\x1f") // (without -k's callers)
		c.bw.WriteString(`,"arguments":`)
		c.bw.Write(jsonText(safe(strings.ReplaceAll(a, "\t", ", "))))
	}
	c.bw.WriteString("}}")
}

func (c *chrome) close(t *threadSpans, _ *trace.Code, at int64, ok bool, value string) {
	c.event(t, 'E', at)
	switch {
	case !ok && value != "":
		c.bw.WriteString(`,"args":{"exception":`)
		c.bw.Write(jsonText(safe(value)))
		c.bw.WriteByte('}')
	case !ok:
		c.bw.WriteString(`,"args":{"exception":true}`)
	case value != "":
		c.bw.WriteString(`,"args":{"return":`)
		c.bw.Write(jsonText(safe(value)))
		c.bw.WriteByte('}')
	}
	c.bw.WriteByte('}')
}

func (c *chrome) finish(m *matcher) error {
	procs := map[int]bool{}
	for _, t := range m.order {
		c.begin()
		c.bw.WriteString(`{"ph":"M","name":"thread_name","pid":` + strconv.Itoa(pid(t)) + `,"tid":` + strconv.Itoa(t.thread.TID) + `,"args":{"name":`)
		name := threadName(t)
		if name == "" {
			name = "tid " + strconv.Itoa(t.thread.TID)
		}
		c.bw.Write(jsonText(name))
		c.bw.WriteString("}}")
		if p := pid(t); !procs[p] {
			procs[p] = true
			c.begin()
			c.bw.WriteString(`{"ph":"M","name":"process_name","pid":` + strconv.Itoa(p) + `,"args":{"name":`)
			c.bw.Write(jsonText("python " + strconv.Itoa(p)))
			c.bw.WriteString("}}")
		}
	}
	if !c.started {
		c.begin()
		c.bw.WriteString(`{"ph":"M","name":"process_name","pid":0,"args":{"name":"nothing recorded"}}`)
	}
	c.bw.WriteString("\n]}\n")
	return c.bw.Flush()
}

func pid(t *threadSpans) int {
	if t.proc == nil {
		return 0
	}
	return t.proc.PID
}
