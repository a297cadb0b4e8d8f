package chaos

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Action is what an Event does to its target.
type Action string

// The actions of a schedule.
const (
	// ActionKill sends SIGKILL to a service and restarts it after Event.Down.
	ActionKill Action = "kill"
	// ActionKafkaRestart stops Kafka with SIGTERM and starts it again after
	// Event.Down.
	ActionKafkaRestart Action = "kafka-restart"
	// ActionMosquittoRestart stops Mosquitto with SIGTERM (it saves its
	// sessions and queues) and starts it again.
	ActionMosquittoRestart Action = "mosquitto-restart"
)

// Event is one fault of a schedule.
type Event struct {
	// At is when it happens, from the start of publishing.
	At time.Duration
	// Action is what happens; Target the service or broker it happens to.
	Action Action
	Target string
	// Down is how long the target stays down before it is started again.
	Down time.Duration
}

func (e Event) String() string {
	return fmt.Sprintf("%v %s %s (down %v)", e.At.Round(time.Millisecond), e.Action, e.Target, e.Down.Round(time.Millisecond))
}

// ScheduleConfig says how many faults a schedule holds and over how long.
type ScheduleConfig struct {
	// Seed makes the schedule reproducible.
	Seed uint64
	// Span is the time over which events are spread (the publishing time);
	// they fall between 5 % and 90 % of it, so that the pipeline is busy
	// before the first and the last one still hits readings in flight.
	Span time.Duration
	// Services are killed KillsPerService times each.
	Services        []string
	KillsPerService int
	// KafkaRestarts and MosquittoRestarts are the broker restarts.
	KafkaRestarts     int
	MosquittoRestarts int
}

// NewSchedule draws the events of cfg at random moments, sorted by time.
// The same config gives the same schedule.
func NewSchedule(cfg ScheduleConfig) []Event {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc4a05))
	at := func() time.Duration {
		lo, hi := cfg.Span/20, cfg.Span*9/10
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	var evs []Event
	for _, svc := range cfg.Services {
		for range cfg.KillsPerService {
			// Most restarts are immediate (a supervisor's), some wait.
			evs = append(evs, Event{At: at(), Action: ActionKill, Target: svc, Down: between(0, 2*time.Second)})
		}
	}
	for range cfg.KafkaRestarts {
		evs = append(evs, Event{At: at(), Action: ActionKafkaRestart, Target: "kafka", Down: between(time.Second, 6*time.Second)})
	}
	for range cfg.MosquittoRestarts {
		evs = append(evs, Event{At: at(), Action: ActionMosquittoRestart, Target: "mosquitto"})
	}
	slices.SortStableFunc(evs, func(a, b Event) int { return cmp.Compare(a.At, b.At) })
	return evs
}
