package wire

import (
	"os"
	"regexp"
	"sort"
	"testing"
)

// Each payload writes exactly the record kinds named here for it.
func TestPayloadsWriteTheNamedKinds(t *testing.T) {
	for _, c := range []struct {
		files []string
		kinds []byte
	}{
		{[]string{"trace.py", "native.py"}, []byte{TraceStarted, TraceRefused, TraceFunction, TraceThread, TraceValue, TraceType, TraceValues,
			TraceBatch, TraceDropped, TraceHooked, TraceProcess, TraceKick}},
		{[]string{"exec.py"}, []byte{ExecStarted, ExecStdout, ExecStderr, ExecDone}},
		{[]string{"pdb.py"}, []byte{PdbStarted, PdbOutput, PdbPrompt, PdbDone, PdbFailed}},
		{[]string{"stack.py"}, []byte{StackStarted, StackThread, StackFrame, StackLocal, StackTask, StackTaskFrame, StackDone, StackFailed}},
	} {
		written := map[string]bool{}
		for _, f := range c.files {
			src, err := os.ReadFile("../hook/" + f)
			if err != nil {
				t.Fatal(err)
			}
			// A record's kind: b'X' as the first argument of the writer, or
			// the first byte of a record made by hand (KICK, with its length).
			for _, m := range regexp.MustCompile(`(?:record|rec|put|write_record|emit_record)\(b'([A-Z])'|= b'([A-Z])\\0`).FindAllStringSubmatch(string(src), -1) {
				written[m[1]+m[2]] = true
			}
			for _, m := range regexp.MustCompile(`\(b'([A-Z])',|b'([A-Z])' \+ (?:struct\.pack|u32)\(`).FindAllStringSubmatch(string(src), -1) {
				written[m[1]+m[2]] = true
			}
		}
		var named, got []string
		for _, k := range c.kinds {
			named = append(named, string(k))
		}
		for k := range written {
			got = append(got, k)
		}
		sort.Strings(named)
		sort.Strings(got)
		if len(named) != len(got) || fmtList(named) != fmtList(got) {
			t.Errorf("%v write %v; wire names %v", c.files, got, named)
		}
	}
}

func fmtList(s []string) string {
	out := ""
	for _, x := range s {
		out += x
	}
	return out
}
