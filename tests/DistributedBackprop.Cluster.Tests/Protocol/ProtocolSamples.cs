using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Protocol;

/// <summary>Small runs, node contexts and the expected subtree sums computed with Core alone (the oracle).</summary>
internal static class ProtocolSamples
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>A tiny network: each step is cheap, so a probe can play every worker.</summary>
    public static TrainingOptions TinyOptions(int workers = 3, int threads = 1) => new()
    {
        Layers = "784-8-10",
        Batch = 64,
        Slices = 8,
        Epochs = 1,
        Workers = workers,
        Threads = threads,
    };

    /// <summary>A fresh copy of the first rows of the embedded sample's splits (raw pixels).</summary>
    public static DataSplit Subset(int trainRows, int testRows)
    {
        var all = EmbeddedSample.Load();
        return new DataSplit(all.Train.Rows(0, trainRows, "train subset"), all.Test.Rows(0, testRows, "test subset"));
    }

    public static NodeContext Context(TrainingOptions options, DataSplit raw, int minNodes = 1,
        CoordinatorTuning? tuning = null) =>
        new(new JobSpec(options, raw, new JobOutputs(null, null, minNodes, minNodes), localWorkers: 1) { Tuning = tuning ?? new() });

    /// <summary>
    /// A one-node cluster system built like <see cref="Hosting.ClusterNode"/> (remoting on 127.0.0.1 port 0, clustering,
    /// the wire serializer), joined to itself, so the coordinator sees a real MemberUp.
    /// </summary>
    public static ActorSystem SingleNodeCluster(string name)
    {
        var services = new ServiceCollection();
        services.AddAkka(name, builder => builder
            .AddHocon("""
                akka.loglevel = WARNING
                akka.log-dead-letters = off
                akka.coordinated-shutdown.exit-clr = off
                """, HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = 0 })
            .WithWireRemotingSettings()
            .WithClustering(new ClusterOptions { Roles = ["worker"] })
            .WithWireSerializer());
        // The provider is not disposed: the test kit terminates the system it owns.
        var system = services.BuildServiceProvider().GetRequiredService<ActorSystem>();
        var cluster = Akka.Cluster.Cluster.Get(system);
        Assert.True(cluster.JoinAsync(cluster.SelfAddress).Wait(Patience), "the single node did not join itself");
        return system;
    }

    /// <summary>An ActorSystem with the wire serializer and no remoting (entities and caches under test).</summary>
    public static ActorSystem LocalSystem(string name) => Wire.WireSamples.HostedSystem(name, remoting: false);

    /// <summary>The aligned subtree sums a worker holding slices [first, end) of a step returns, computed by Core.</summary>
    public static Dictionary<TreeNode, float[]> SubtreeSums(TrainingSetup setup, ModelWeights weights, long step, int first,
        int end, int threads = 1)
    {
        var runner = new SliceRunner(setup.Network, setup.Plan.SliceSize, setup.Options.Slices, threads,
            BufferPool.ForSlices(setup.Network.ResultLength, setup.Options.Slices));
        var (epoch, stepInEpoch) = setup.Plan.Locate(step);
        var batch = setup.Plan.Permutation(epoch).AsMemory(stepInEpoch * setup.Options.Batch, setup.Options.Batch);
        return runner.Run(weights, setup.Data.Train, batch, setup.Options.Seed, step, first, end)
            .ToDictionary(n => n.Key, n => n.Value.AsSpan(0, setup.Network.ResultLength).ToArray());
    }

    public static void AssertBitEqual(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.True(MemoryMarshal.AsBytes(expected.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(actual.AsSpan())),
            $"{what}: the bits differ");
    }
}

/// <summary>Stands at a fixed path (e.g. /user/weights-cache) and forwards everything to a probe, sender kept.</summary>
internal sealed class ForwardTo : ReceiveActor
{
    public ForwardTo(IActorRef target) => ReceiveAny(message => target.Forward(message));
}
