// Package natlab is camagent's one NAT lab: it builds topologies out of
// Linux network namespaces, veth pairs and nftables (real kernel NAT, no
// emulation) and runs the camera, viewer and relay in them. Root only;
// its tests skip without root and under -short.
//
//   - TestNATMatrix (make netlab-matrix): every camera/viewer NAT pair of
//     issue 4, the roles in-process (internal/core/agent, internal/core/viewer,
//     a relaytest relay in a re-executed test binary); docs/nat-matrix.md.
//   - TestRelayLab (make netlab-relay): home NAT and carrier NAT, the relay
//     killed and restarted mid-stream; out/netlab-relay.mp4.
//   - TestDirectLab (make netlab-direct): the same lab, the viewer going
//     from the relay to the direct path and back when it is cut;
//     out/netlab-direct.mp4.
//
// The relay and direct labs drive the built binary (bin/camagent, or
// $CAMAGENT_BIN) as processes, as a user runs it, and read only what a
// user can: its output files, logs, and the relay's metrics endpoint.
package natlab
