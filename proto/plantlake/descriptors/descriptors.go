// Package descriptors holds the descriptors of plantlake's protos together
// with their source information, comments included. protoc-gen-go leaves
// source information out of the generated code, so server reflection built
// on the generated descriptors shows grpcurl users the structure of the API
// but none of its documentation; the services' reflection answers from these
// instead. plantlake.binpb is written by proto/generate.sh (buf build) and
// checked by make test like the generated Go code.
package descriptors

import (
	_ "embed"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

//go:embed plantlake.binpb
var fileDescriptorSet []byte

// Files returns plantlake's proto files and the files they import, with their
// comments. The result is built once and shared; it must not be modified.
var Files = sync.OnceValues(func() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(fileDescriptorSet, &set); err != nil {
		return nil, fmt.Errorf("descriptors: decode plantlake.binpb: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("descriptors: build files: %w", err)
	}
	return files, nil
})
