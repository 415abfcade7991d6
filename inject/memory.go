// The target's memory: through /proc/PID/mem, or process_vm_readv/writev
// through a thread lptrace holds; and what is mapped where.

package inject

import (
	"time"

	"github.com/lptrace/lptrace/proc"
)

// writeMem writes into the target's memory; tid is a thread lptrace holds
// stopped (used when /proc/PID/mem could not be opened).
func (inj *Injector) writeMem(tid int, addr uint64, b []byte) error {
	return inj.memDone(inj.mem.WriteThrough(tid, addr, b))
}

// readMem reads the target's memory, like writeMem.
func (inj *Injector) readMem(tid int, addr uint64, b []byte) error {
	return inj.memDone(inj.mem.ReadThrough(tid, addr, b))
}

// memDone: a transfer through /proc/PID/mem that failed or fell short
// means the address space is gone (an exec) or the address is not mapped.
func (inj *Injector) memDone(err error) error {
	if err != nil && inj.mem.Opened() && inj.Execd() {
		return ErrExec
	}
	return err
}

// stackRoom returns how many bytes the thread's stack can still grow below sp.
func (inj *Injector) stackRoom(sp uint64) uint64 {
	// Without queries: the main thread's stack in maps read a moment ago
	// is still right: the kernel never shrinks it, and a busy main thread
	// is the usual case (a read of the maps costs 0.1-0.3 ms of an attach,
	// more for a big process). Other threads' stacks come and go: read
	// again.
	if !inj.queries() && (time.Since(inj.mapsRead) > mapsFresh || !inj.inMainStack(sp)) {
		if maps, err := proc.ReadMaps(inj.pid); err == nil {
			inj.tgt.Maps = maps // threads started since have new stacks
			inj.mapsRead = time.Now()
		}
	}
	// The mapping holding the word below sp (sp may be its very end).
	if m, ok := inj.mappingAt(sp - 1); ok {
		if m.Path == "[stack]" {
			if inj.stackLimit == 0 {
				inj.stackLimit = max(proc.StackLimit(inj.pid), 1)
			}
			if lim := inj.stackLimit; lim > 1 && m.End > lim {
				if floor := m.End - lim; sp > floor {
					return sp - floor
				}
				return 0
			}
			return 8 << 20
		}
		// A thread stack: an anonymous mapping (recent glibc guards
		// stacks without a separate mapping, so neighbours may merge).
		// A stack pointer in the brk heap or in a file mapping (a
		// malloc'd alternate stack, a coroutine) has no room we trust.
		if m.Path == "" {
			return sp - m.Start
		}
		return 0
	}
	return 0
}

// mapsFresh is how long stackRoom trusts the maps for the main thread's
// stack.
const mapsFresh = 100 * time.Millisecond

// queries reports whether the kernel answers for one address at a time
// (proc.Maps): then every answer is current, and Target.Maps holds only the
// file mappings.
func (inj *Injector) queries() bool { return inj.tgt.MapQuery != nil }

// mappingAt returns the mapping that holds addr: asked of the kernel, else
// looked up in the maps as last read.
func (inj *Injector) mappingAt(addr uint64) (proc.Mapping, bool) {
	if inj.queries() {
		m, ok, err := inj.tgt.MapQuery.At(addr)
		return m, ok && err == nil
	}
	for _, m := range inj.tgt.Maps {
		if addr >= m.Start && addr < m.End {
			return m, true
		}
	}
	return proc.Mapping{}, false
}

// inMainStack reports whether sp, and the call block below it, lie in the
// main thread's stack as last read.
func (inj *Injector) inMainStack(sp uint64) bool {
	for _, m := range inj.tgt.Maps {
		if m.Path == "[stack]" {
			return sp >= m.Start+64<<10 && sp <= m.End // room for any call block
		}
	}
	return false
}

// mapped reports whether [addr, addr+n) is mapped writable in the target:
// the context block must be, since the kernel does not grow a stack for
// process_vm_writev.
func (inj *Injector) mapped(addr, n uint64) bool {
	m, ok := inj.mappingAt(addr)
	return ok && addr+n <= m.End && len(m.Perms) > 1 && m.Perms[1] == 'w'
}
