package grpcserver

import (
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1pb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/plantlake/plantlake/proto/plantlake/descriptors"
)

// registerReflection registers server reflection (v1 and v1alpha) answering
// from plantlake's documented descriptors first, so that `grpcurl describe`
// shows the protos' comments, and from the generated ones for everything
// else (health, reflection itself).
func registerReflection(s *grpc.Server, log *slog.Logger) {
	resolver := protodesc.Resolver(protoregistry.GlobalFiles)
	if documented, err := descriptors.Files(); err != nil {
		log.Warn("server reflection without the protos' comments", "err", err)
	} else {
		resolver = firstFound{documented, protoregistry.GlobalFiles}
	}
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: resolver, ExtensionResolver: protoregistry.GlobalTypes}
	reflectionv1pb.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	reflectionv1alphapb.RegisterServerReflectionServer(s, reflection.NewServer(opts))
}

// firstFound looks a descriptor up in each resolver in turn.
type firstFound []protodesc.Resolver

// FindFileByPath returns the file at path from the first resolver that has it.
func (rs firstFound) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	for _, r := range rs {
		fd, err := r.FindFileByPath(path)
		if !errors.Is(err, protoregistry.NotFound) {
			return fd, err
		}
	}
	return nil, protoregistry.NotFound
}

// FindDescriptorByName returns the named descriptor from the first resolver
// that has it.
func (rs firstFound) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, r := range rs {
		d, err := r.FindDescriptorByName(name)
		if !errors.Is(err, protoregistry.NotFound) {
			return d, err
		}
	}
	return nil, protoregistry.NotFound
}
