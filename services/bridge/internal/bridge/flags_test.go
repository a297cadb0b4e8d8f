package bridge

import (
	"flag"
	"reflect"
	"testing"
)

func parseFlags(args ...string) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(discard{})
	c.RegisterFlags(fs)
	return c, fs.Parse(args)
}

func TestRegisterFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantFilters []string
		wantRoutes  []Route
	}{
		{"defaults", nil, []string{DefaultTopicFilter}, nil},
		{"filters replace the default", []string{"--mqtt-topic-filter", "a/#,b/+", "--mqtt-topic-filter", "c"}, []string{"a/#", "b/+", "c"}, nil},
		{"routes", []string{"--kafka-topic-map", "lab/#=lab_raw", "--kafka-topic-map", "x/#=x_raw"}, []string{DefaultTopicFilter}, []Route{{"lab/#", "lab_raw"}, {"x/#", "x_raw"}}},
	}
	for _, tc := range tests {
		c, err := parseFlags(tc.args...)
		if err != nil || !reflect.DeepEqual(c.TopicFilters, tc.wantFilters) || !reflect.DeepEqual(c.Routes, tc.wantRoutes) {
			t.Errorf("%s: filters %v routes %v err %v, want %v %v", tc.name, c.TopicFilters, c.Routes, err, tc.wantFilters, tc.wantRoutes)
		}
	}
}

func TestRegisterFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"--kafka-topic-map", "lab/#"},
		{"--kafka-topic-map", "=t"},
		{"--max-payload-bytes", "lots"},
	} {
		if _, err := parseFlags(args...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
