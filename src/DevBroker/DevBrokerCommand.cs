using System;
using System.CommandLine;
using System.Linq;
using PipelineDsl.Kafka;
using PipelineDsl.Kafka.Testing;

// The dev broker's command line, shared by pipelinedsl-dev-broker and the KafkaClicks sample's "dev-broker"
// command (linked into both), so that the two take the same options.

/// <summary>Builds the dev broker's command: <c>[--brokers N] [--topic NAME:PARTITIONS]...</c>.</summary>
internal static class DevBrokerCommand
{
    public static Command Create(Command command)
    {
        var brokers = new Option<int>("--brokers") { Description = "Number of brokers (ids 1..N)", DefaultValueFactory = _ => 1 }.Positive();
        var topics = new Option<(string Name, int Partitions)[]>("--topic")
        {
            Description = "A topic to create first, as NAME:PARTITIONS (repeatable)",
            AllowMultipleArgumentsPerToken = false,
            CustomParser = r =>
            {
                try
                {
                    return r.Tokens.Select(t => KafkaDevBroker.ParseTopic(t.Value)).ToArray();
                }
                catch (FormatException e)
                {
                    r.AddError("--topic: " + e.Message);
                    return Array.Empty<(string, int)>();
                }
            },
        };
        command.Options.Add(brokers);
        command.Options.Add(topics);
        command.SetAction(r =>
        {
            try
            {
                return KafkaDevBroker.Run(r.GetValue(brokers), r.GetValue(topics) ?? Array.Empty<(string, int)>(), Console.In, Console.Out);
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine("error: " + e.Message);
                return 1;
            }
        });
        return command;
    }
}
