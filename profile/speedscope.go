package profile

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"

	"github.com/lptrace/lptrace/trace"
)

// speedscope's file format (https://www.speedscope.app/file-format-schema.json):
// one evented profile per thread, its frames shared. speedscope.app opens
// it, offline too.

type ssEvent struct {
	frame int32
	open  bool
	at    int64
}

type speedscope struct {
	w      io.Writer
	opts   Options
	frames map[*trace.Code]int32
	codes  []*trace.Code
	events map[*threadSpans][]ssEvent
}

func newSpeedscope(w io.Writer, opts Options) *speedscope {
	return &speedscope{w: w, opts: opts, frames: map[*trace.Code]int32{}, events: map[*threadSpans][]ssEvent{}}
}

func (s *speedscope) frame(c *trace.Code) int32 {
	i, ok := s.frames[c]
	if !ok {
		i = int32(len(s.codes))
		s.frames[c] = i
		s.codes = append(s.codes, c)
	}
	return i
}

func (s *speedscope) open(t *threadSpans, c *trace.Code, at int64, _ bool, _ string) {
	s.events[t] = append(s.events[t], ssEvent{s.frame(c), true, at})
}

func (s *speedscope) close(t *threadSpans, c *trace.Code, at int64, _ bool, _ string) {
	s.events[t] = append(s.events[t], ssEvent{s.frame(c), false, at})
}

func (s *speedscope) finish(m *matcher) error {
	bw := bufio.NewWriter(s.w)
	str := func(v string) []byte { b, _ := json.Marshal(v); return b }
	bw.WriteString(`{"$schema":"https://www.speedscope.app/file-format-schema.json","exporter":"lptrace","name":`)
	bw.Write(str("lptrace: " + s.opts.Title))
	bw.WriteString(`,"activeProfileIndex":0,"shared":{"frames":[`)
	for i, c := range s.codes {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"name":`)
		bw.Write(str(safe(c.Name)))
		bw.WriteString(`,"file":`)
		bw.Write(str(safe(c.File)))
		bw.WriteString(`,"line":` + strconv.Itoa(c.Line) + `}`)
	}
	bw.WriteString(`]},"profiles":[`)
	for i, t := range m.order {
		if i > 0 {
			bw.WriteByte(',')
		}
		evs := s.events[t]
		start, end := t.first, t.last
		if len(evs) > 0 {
			start, end = min(start, evs[0].at), max(end, evs[len(evs)-1].at)
		}
		bw.WriteString(`{"type":"evented","unit":"nanoseconds","name":`)
		bw.Write(str(threadLabel(t)))
		bw.WriteString(`,"startValue":` + strconv.FormatInt(start-m.first, 10) + `,"endValue":` + strconv.FormatInt(end-m.first, 10) + `,"events":[`)
		for j, e := range evs {
			if j > 0 {
				bw.WriteByte(',')
			}
			kind := "C"
			if e.open {
				kind = "O"
			}
			bw.WriteString(`{"type":"` + kind + `","frame":` + strconv.Itoa(int(e.frame)) + `,"at":` + strconv.FormatInt(e.at-m.first, 10) + `}`)
		}
		bw.WriteString(`]}`)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
