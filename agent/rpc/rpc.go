// Package rpc serves the agent's gRPC service to the manager.
package rpc

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/agent/facts"
	"github.com/admq/admq-manager/agent/node"
	"github.com/admq/admq-manager/internal/version"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// Service implements agentv1.AgentServiceServer.
type Service struct {
	agentv1.UnimplementedAgentServiceServer
	// Facts collects the host's facts.
	Facts *facts.Collector
	// Nodes deploys and runs the agent's nodes; nil: the node RPCs answer
	// Unimplemented.
	Nodes *node.Manager
}

// Ping answers at once with the agent's clock and version.
func (s *Service) Ping(context.Context, *agentv1.PingRequest) (*agentv1.PingResponse, error) {
	return &agentv1.PingResponse{AgentTimeUnixNano: time.Now().UnixNano(), AgentVersion: version.Version}, nil
}

// GetFacts collects the host's facts now.
func (s *Service) GetFacts(ctx context.Context, _ *agentv1.GetFactsRequest) (*agentv1.Facts, error) {
	f, err := s.Facts.Collect(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "collect facts: %v", err)
	}
	return FactsToProto(f), nil
}

// FactsToProto converts host facts to their wire form.
func FactsToProto(f facts.Facts) *agentv1.Facts {
	return &agentv1.Facts{
		Hostname:        f.Hostname,
		Os:              f.OS,
		Platform:        f.Platform,
		PlatformVersion: f.PlatformVersion,
		KernelVersion:   f.KernelVersion,
		Arch:            f.Arch,
		Cpus:            int32(f.CPUs),
		MemoryTotal:     f.MemoryTotal,
		MemoryAvailable: f.MemoryAvailable,
		DiskPath:        f.DiskPath,
		DiskTotal:       f.DiskTotal,
		DiskFree:        f.DiskFree,
		AgentVersion:    f.AgentVersion,
		BootTime:        f.BootTime,
		StateDir:        f.StateDir,
	}
}
