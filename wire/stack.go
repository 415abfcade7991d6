package wire

import (
	"errors"
	"strconv"
	"strings"
)

// Dump is what lptrace stack's records say (hook/stack.py): each thread
// with its frames (and their locals), and the program's asyncio tasks.
type Dump struct {
	PID     int
	Threads []*DumpThread
	Tasks   []*DumpTask
	Done    bool   // the StackDone record came
	Failed  string // why the stacks could not be read (StackFailed)
}

// DumpThread is a thread of the dump.
type DumpThread struct {
	PID    int         `json:"pid"`
	TID    int         `json:"tid"`
	Ident  uint64      `json:"ident"`
	Name   string      `json:"name"`
	Daemon bool        `json:"daemon"`
	Main   bool        `json:"main"`
	State  string      `json:"state,omitempty"` // what it did before lptrace came: "blocked in epoll_wait", ...
	Frames []DumpFrame `json:"frames"`
}

// DumpTask is an asyncio task of the dump (--tasks).
type DumpTask struct {
	PID    int         `json:"pid"`
	Task   string      `json:"task"`
	State  string      `json:"state"`
	Awaits string      `json:"awaits,omitempty"` // the task it waits for (gather: several), or a future
	Frames []DumpFrame `json:"frames"`           // its coroutines, outermost first
}

// DumpFrame is a frame of a thread or of a task's coroutines.
type DumpFrame struct {
	File     string      `json:"file"`
	Line     int         `json:"line"`
	Function string      `json:"function"`
	Source   string      `json:"source,omitempty"` // the line itself, from the target's file system
	Locals   [][2]string `json:"locals,omitempty"` // in order: [name, repr]
}

// ErrBadData is a record that does not fit its payload's layout: the
// target is untrusted, and a dump that says so is refused whole.
var ErrBadData = errors.New("bad data from the target")

// Add takes one record of the dump.
func (d *Dump) Add(kind byte, data []byte) error {
	f := strings.Split(string(data), "\t")
	frame := func() (DumpFrame, error) {
		if len(f) < 3 {
			return DumpFrame{}, ErrBadData
		}
		line, _ := strconv.Atoi(f[1])
		return DumpFrame{File: f[0], Line: line, Function: strings.Join(f[2:], "\t")}, nil
	}
	switch kind {
	case StackThread:
		if len(f) < 5 {
			return ErrBadData
		}
		t := &DumpThread{PID: d.PID, Name: f[2], Daemon: f[3] == "1", Main: f[4] == "1"}
		t.Ident, _ = strconv.ParseUint(f[0], 10, 64)
		t.TID, _ = strconv.Atoi(f[1])
		d.Threads = append(d.Threads, t)
	case StackFrame:
		fr, err := frame()
		if len(d.Threads) == 0 || err != nil {
			return ErrBadData
		}
		t := d.Threads[len(d.Threads)-1]
		t.Frames = append(t.Frames, fr)
	case StackLocal:
		if len(d.Threads) == 0 || len(d.Threads[len(d.Threads)-1].Frames) == 0 || len(f) < 2 {
			return ErrBadData
		}
		t := d.Threads[len(d.Threads)-1]
		fr := &t.Frames[len(t.Frames)-1]
		fr.Locals = append(fr.Locals, [2]string{f[0], strings.Join(f[1:], "\t")})
	case StackTask:
		if len(f) < 3 {
			return ErrBadData
		}
		d.Tasks = append(d.Tasks, &DumpTask{PID: d.PID, Task: f[0], State: f[1], Awaits: strings.Join(f[2:], "\t")})
	case StackTaskFrame:
		fr, err := frame()
		if len(d.Tasks) == 0 || err != nil {
			return ErrBadData
		}
		t := d.Tasks[len(d.Tasks)-1]
		t.Frames = append(t.Frames, fr)
	case StackDone:
		d.Done = true
	case StackFailed:
		d.Failed = string(data)
	}
	return nil
}
