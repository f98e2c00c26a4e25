using System.Diagnostics.Metrics;
using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Cluster.Telemetry;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.InProcessCluster;

/// <summary>
/// A member's actor that is not the coordinator cannot play it: weights, jobs and the end it sends to another node are
/// dropped and counted (<c>distbp_peer_refusals_total{reason="wrong-sender"}</c>). Two real nodes waiting for a third, so
/// no job runs.
/// </summary>
[Collection(InProcessClusterCollection.Name)]
public sealed class SenderCheckTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>Tells whatever it is given to <paramref name="target"/>, as itself.</summary>
    private sealed class Impostor : ReceiveActor
    {
        public Impostor(ActorSelection target) => Receive<object>(message => target.Tell(message, Self));
    }

    [Fact]
    public async Task Coordinator_messages_from_another_actor_of_a_member_are_dropped_and_counted()
    {
        var options = TinyOptions(workers: 1);
        var refusals = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == TrainingMetrics.MeterName && instrument.Name == "distbp_peer_refusals_total")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag is { Key: "reason", Value: "wrong-sender" })
                {
                    Interlocked.Add(ref refusals, (int)value);
                }
            }
        });
        listener.Start();

        var nodes = new List<ClusterNode>();
        using var cancel = new CancellationTokenSource(Patience);
        try
        {
            for (var i = 0; i < 2; i++)
            {
                // Three nodes needed: the coordinator waits, and nothing but this test's messages moves.
                var context = Context(options, Subset(64, 10), minNodes: 3);
                nodes.Add(await ClusterNode.StartAsync(new ClusterNodeSettings
                {
                    Seeds = i == 0 ? [] : [nodes[0].Address.ToString()],
                }, context, cancel.Token));
            }
            Assert.True(await nodes[1].WaitUntilUpAsync(Patience));
            var a = nodes[0];
            var impostor = nodes[1].System.ActorOf(Props.Create(() =>
                new Impostor(nodes[1].System.ActorSelection(new RootActorPath(a.Address) / "user" / "weights-cache"))), "impostor");
            var runId = a.Context.Spec.ConfigHash;

            impostor.Tell(new WeightsVersion(runId, 99, [1f, 2f], []));
            impostor.Tell(new NormaliserReady(runId, [0f], [1f]));

            var deadline = DateTime.UtcNow + Patience;
            while (Volatile.Read(ref refusals) < 2 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
            // Both refused (a refusal returns before the cache stores anything).
            Assert.Equal(2, Volatile.Read(ref refusals));
        }
        finally
        {
            foreach (var node in Enumerable.Reverse(nodes))
            {
                await node.DisposeAsync();
            }
        }
    }
}
