package session

import (
	"testing"

	"github.com/lptrace/lptrace/inject"
)

// A pending call queued from a worker thread runs in the main thread: the
// worker is not hooked by it. (Marking the queuing thread as hooked left a
// worker untraced for the whole session, before 3.12; seen in
// TestAttachThreadAttribution under load.)
func TestRanInstall(t *testing.T) {
	if got := ranInstall(inject.Route{Pending: true, TID: 101}, 100); got != 100 {
		t.Errorf("pending call queued from 101: ran in %d, want the main thread 100", got)
	}
	if got := ranInstall(inject.Route{TID: 101}, 100); got != 101 {
		t.Errorf("direct call in 101: ran in %d, want 101", got)
	}
}
