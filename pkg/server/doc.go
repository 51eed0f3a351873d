// Package server assembles the daemon: Config (one TOML file), New, which
// builds every part in order, the listeners, the gRPC interceptor chain,
// the management services (one file each) and the /metrics endpoint.
//
// Handlers return domain errors wrapping an errdefs class; only the
// outermost interceptor turns them into gRPC statuses.
//
// This package may import everything below it; nothing imports it but
// cmd/cri-runtime.
package server
