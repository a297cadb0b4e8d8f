module github.com/plantlake/plantlake/devstack

go 1.26

require (
	github.com/confluentinc/confluent-kafka-go/v2 v2.11.1
	github.com/eclipse/paho.mqtt.golang v1.5.1
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)
