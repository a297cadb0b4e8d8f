// Package compose holds plantlake's container stack, docker-compose.yml and
// the Dockerfile beside it, and the checks its tests run on them: that every
// service is configured only through variables its binary knows
// (PLANTLAKE_* flags, OTEL_*), and that ports, published ports and
// healthchecks agree with DESIGN.md section 3.
//
// The fast test loads the compose file with compose-go and checks it against
// the --help of binaries built from this tree. The engine test (build tag
// compose, `make compose-test`) builds every image and runs the stack.
package compose
