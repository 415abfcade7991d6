package profile

import (
	"bufio"
	"hash/fnv"
	"io"
	"strconv"

	"github.com/lptrace/lptrace/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// Perfetto's own trace format (protobuf, .pftrace): a track per thread
// under its process, a slice per call, names and source locations
// interned once per function, packets written as the events come. A
// session of tens of millions of events stays a file Perfetto's UI opens
// (the same in JSON would be gigabytes). Encoded with protobuf's wire
// package; the field numbers are those of Perfetto's protos
// (protos/perfetto/trace/trace_packet.proto, track_event/*.proto).

// Field numbers.
const (
	tracePacket = 1 // Trace.packet

	pktTimestamp     = 8
	pktSequenceID    = 10
	pktTrackEvent    = 11
	pktInternedData  = 12
	pktSequenceFlags = 13
	pktTrackDesc     = 60

	seqCleared    = 1 // SEQ_INCREMENTAL_STATE_CLEARED
	seqNeedsState = 2 // SEQ_NEEDS_INCREMENTAL_STATE

	evType           = 9
	evNameIID        = 10
	evTrackUUID      = 11
	evSourceLocation = 34
	sliceBegin       = 1
	sliceEnd         = 2

	descUUID   = 1
	descName   = 2
	descProc   = 3
	descThread = 4
	descParent = 5

	procPID  = 1
	procName = 6

	threadPID      = 1
	threadTID      = 2
	threadNameText = 5

	internedNames     = 2
	internedLocations = 4
	nameIID           = 1
	nameName          = 2
	locIID            = 1
	locFile           = 2
	locLine           = 4
)

// sequenceID is the one sequence lptrace writes.
const sequenceID = 1

type perfetto struct {
	bw      *bufio.Writer
	started bool
	procs   map[int]bool
	tracks  map[*threadSpans]uint64
	iids    map[*trace.Code]uint64
	pkt     []byte
}

func newPerfetto(w io.Writer, _ Options) *perfetto {
	return &perfetto{bw: bufio.NewWriterSize(w, 1<<16), procs: map[int]bool{}, tracks: map[*threadSpans]uint64{}, iids: map[*trace.Code]uint64{}}
}

// packet writes one TracePacket that build fills.
func (p *perfetto) packet(build func(b []byte) []byte) {
	b := p.pkt[:0]
	b = protowire.AppendTag(b, pktSequenceID, protowire.VarintType)
	b = protowire.AppendVarint(b, sequenceID)
	if !p.started {
		p.started = true
		b = protowire.AppendTag(b, pktSequenceFlags, protowire.VarintType)
		b = protowire.AppendVarint(b, seqCleared)
	}
	b = build(b)
	p.pkt = b
	var head []byte
	head = protowire.AppendTag(head, tracePacket, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(b)))
	p.bw.Write(head)
	p.bw.Write(b)
}

func message(b []byte, field protowire.Number, build func(b []byte) []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, field, protowire.BytesType), build(nil))
}

func varint(b []byte, field protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, field, protowire.VarintType), v)
}

func text(b []byte, field protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, field, protowire.BytesType), s)
}

// track is the thread's track, described at its first slice.
func (p *perfetto) track(t *threadSpans) uint64 {
	if u, ok := p.tracks[t]; ok {
		return u
	}
	pid := pid(t)
	procUUID := uuid(pid, -1)
	if !p.procs[pid] {
		p.procs[pid] = true
		p.packet(func(b []byte) []byte {
			return message(b, pktTrackDesc, func(b []byte) []byte {
				b = varint(b, descUUID, procUUID)
				return message(b, descProc, func(b []byte) []byte {
					b = varint(b, procPID, uint64(pid))
					return text(b, procName, "python "+strconv.Itoa(pid))
				})
			})
		})
	}
	u := uuid(pid, t.thread.TID)
	p.tracks[t] = u
	p.packet(func(b []byte) []byte {
		return message(b, pktTrackDesc, func(b []byte) []byte {
			b = varint(b, descUUID, u)
			b = varint(b, descParent, procUUID)
			return message(b, descThread, func(b []byte) []byte {
				b = varint(b, threadPID, uint64(pid))
				b = varint(b, threadTID, uint64(t.thread.TID))
				name := threadName(t)
				if name == "" {
					name = "tid " + strconv.Itoa(t.thread.TID)
				}
				return text(b, threadNameText, name)
			})
		})
	})
	return u
}

func uuid(pid, tid int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strconv.Itoa(pid) + "/" + strconv.Itoa(tid)))
	return h.Sum64() >> 1
}

func (p *perfetto) open(t *threadSpans, c *trace.Code, at int64, _ bool, _ string) {
	track := p.track(t)
	iid, known := p.iids[c]
	if !known {
		iid = uint64(len(p.iids) + 1)
		p.iids[c] = iid
	}
	p.packet(func(b []byte) []byte {
		b = varint(b, pktTimestamp, uint64(at))
		b = varint(b, pktSequenceFlags, seqNeedsState)
		b = message(b, pktTrackEvent, func(b []byte) []byte {
			b = varint(b, evType, sliceBegin)
			b = varint(b, evTrackUUID, track)
			b = varint(b, evNameIID, iid)
			return varint(b, evSourceLocation, iid)
		})
		if !known {
			b = message(b, pktInternedData, func(b []byte) []byte {
				b = message(b, internedNames, func(b []byte) []byte {
					return text(varint(b, nameIID, iid), nameName, safe(c.Name))
				})
				return message(b, internedLocations, func(b []byte) []byte {
					b = text(varint(b, locIID, iid), locFile, safe(c.File))
					return varint(b, locLine, uint64(c.Line))
				})
			})
		}
		return b
	})
}

func (p *perfetto) close(t *threadSpans, _ *trace.Code, at int64, _ bool, _ string) {
	track := p.track(t)
	p.packet(func(b []byte) []byte {
		b = varint(b, pktTimestamp, uint64(at))
		b = varint(b, pktSequenceFlags, seqNeedsState)
		return message(b, pktTrackEvent, func(b []byte) []byte {
			return varint(varint(b, evType, sliceEnd), evTrackUUID, track)
		})
	})
}

func (p *perfetto) finish(m *matcher) error {
	return p.bw.Flush()
}
