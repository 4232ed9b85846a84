using System;
using PipelineDsl.Kafka;

// pipelinedsl-dev-broker [--brokers N] [--topic NAME:PARTITIONS]...
// Prints "bootstrap.servers=…", then takes commands on stdin (topic, down, up, quit). See KafkaDevBroker.
try
{
    return KafkaDevBroker.Run(args, Console.In, Console.Out);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine("pipelinedsl-dev-broker: " + e.Message);
    return 2;
}
