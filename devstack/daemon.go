package devstack

// AttachKafka returns a handle on a daemon Kafka started earlier with
// cfg.Dir (by another process, e.g. `plantlake-dev up`), found through its
// pid file. It returns ErrNotRunning if no such broker is alive. The handle's
// Stop stops it; cfg's ports only label it.
func AttachKafka(cfg KafkaConfig) (*KafkaBroker, error) {
	cfg.Daemon = true
	if err := cfg.setDefaultsNoPorts(); err != nil {
		return nil, err
	}
	b := &KafkaBroker{cfg: cfg}
	p, err := findProcess(b.spec())
	if err != nil {
		return nil, err
	}
	b.proc = p
	return b, nil
}

// AttachMosquitto returns a handle on a daemon Mosquitto started earlier
// with cfg.Dir, found through its pid file, or ErrNotRunning.
func AttachMosquitto(cfg MosquittoConfig) (*MosquittoBroker, error) {
	cfg.Daemon = true
	if cfg.Port == 0 {
		cfg.Port = -1 // not used: the broker runs already
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m := &MosquittoBroker{cfg: cfg, binary: "mosquitto"}
	p, err := findProcess(m.spec())
	if err != nil {
		return nil, err
	}
	m.proc = p
	return m, nil
}

// setDefaultsNoPorts applies the defaults but leaves unset ports alone.
func (c *KafkaConfig) setDefaultsNoPorts() error {
	if c.Port == 0 {
		c.Port = -1
	}
	if c.ControllerPort == 0 {
		c.ControllerPort = -1
	}
	return c.setDefaults()
}
