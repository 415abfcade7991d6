//go:build !linux

package ptrace

// lptrace works on Linux only: it traces with ptrace and reads /proc.
// Building it elsewhere stops here, with this name in the error.
var _ = lptrace_builds_for_linux_only
