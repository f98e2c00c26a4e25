using System.Diagnostics;
using Akka.Remote.Transport;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Chaos;
using Xunit;
using Xunit.Abstractions;
using static DistributedBackprop.Cluster.Tests.Faults.FaultHarness;

namespace DistributedBackprop.Cluster.Tests.Faults;

/// <summary>
/// The fault table of docs/ARCHITECTURE.md on real in-process clusters: whatever fails, the run ends with the single-process trainer's
/// weights bit for bit, within a deadline, and the summary says what was detected. Nodes start one after the other, so
/// the first is the oldest member and hosts the coordinator singleton; with three workers and three nodes the
/// coordinator starts the workers one at a time and the least-shards strategy puts one on each node.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class ClusterFaultTests(ITestOutputHelper output)
{
    private void Report(string test, Stopwatch clock, JobOutcome outcome) =>
        output.WriteLine($"{test}: {clock.Elapsed.TotalSeconds:F1} s; placement {outcome.Summary?["placement"]?.ToJsonString()}; " +
                         $"faults {Describe(outcome)}");

    private static void AssertOracle(TrainingResult expected, JobOutcome outcome)
    {
        Assert.Equal(expected.WeightsSha256, outcome.Result!.WeightsSha256);
        Assert.Equal(expected.WeightsSha256, outcome.Summary!["weights_sha256"]!.GetValue<string>());
        Assert.Equal(expected.Steps, outcome.Result.Steps);
    }

    private static void AssertHostsAWorker(JobOutcome outcome, ClusterNode node) =>
        Assert.True(outcome.Summary!["placement"]!.AsObject().Any(p => p.Value!.GetValue<string>() == node.Address.ToString()),
            $"no worker was placed on {node.Address}: {outcome.Summary["placement"]!.ToJsonString()}");

    [Fact]
    public async Task Worker_node_crash_mid_training_loses_no_step()
    {
        var options = Options();
        var expected = Oracle(options);
        var gate = new StepGate(holdAt: 4);
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        Task? terminated = null;
        try
        {
            await StartNodes(3, i => Context(options, i == 0 ? gate : new StepGate(), minNodes: 3, nodes: 3),
                throttler: true, into: nodes);
            await gate.Reached.WaitAsync(RunDeadline);
            await AwaitConvergence(nodes);
            var victim = nodes[2];
            // The coordinator is held between step 4 and step 5: the node dies with the run in full flight.
            terminated = await Crash(victim, nodes);
            gate.Release();

            var outcome = await CoordinatorOutcome(nodes.Take(2));
            Report(nameof(Worker_node_crash_mid_training_loses_no_step), clock, outcome);

            AssertOracle(expected, outcome);
            AssertHostsAWorker(outcome, nodes[1]);
            var lost = Detected(outcome).Where(f =>
                f["kind"]!.GetValue<string>() is "node-unreachable" or "node-removed" or "worker-silent"
                && f["subject"]!.GetValue<string>().Contains(victim.Address.ToString())).ToList();
            Assert.True(lost.Count > 0, $"the loss of {victim.Address} is not in faults.detected: {Describe(outcome)}");
            Assert.All(lost, f => Assert.True(f["step"]!.GetValue<long>() >= 4, f.ToJsonString()));
            await terminated.WaitAsync(RunDeadline);
        }
        finally
        {
            gate.Release();
            await DisposeAll(nodes);
        }
    }

    [Fact]
    public async Task Worker_node_leaving_mid_training_loses_no_step()
    {
        // ActorSystem.Terminate alone runs CoordinatedShutdown: the node leaves gracefully and sharding hands its worker
        // off to a survivor. Nothing is lost, so nothing need be detected; the weights are the point.
        var options = Options();
        var expected = Oracle(options);
        var gate = new StepGate(holdAt: 4);
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        try
        {
            await StartNodes(3, i => Context(options, i == 0 ? gate : new StepGate(), minNodes: 3, nodes: 3), into: nodes);
            await gate.Reached.WaitAsync(RunDeadline);
            await AwaitConvergence(nodes);
            var terminated = nodes[2].System.Terminate();
            gate.Release();

            var outcome = await CoordinatorOutcome(nodes.Take(2));
            Report(nameof(Worker_node_leaving_mid_training_loses_no_step), clock, outcome);

            AssertOracle(expected, outcome);
            await terminated.WaitAsync(RunDeadline);
        }
        finally
        {
            gate.Release();
            await DisposeAll(nodes);
        }
    }

    [Fact]
    public async Task Blackholed_worker_node_is_worked_around()
    {
        var options = Options();
        var expected = Oracle(options);
        var gate = new StepGate(holdAt: 4);
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        ClusterNode? victim = null;
        try
        {
            await StartNodes(3, i => Context(options, i == 0 ? gate : new StepGate(), minNodes: 3, nodes: 3),
                throttler: true, into: nodes);
            await gate.Reached.WaitAsync(RunDeadline);
            await AwaitConvergence(nodes);
            victim = nodes[2];
            // Nothing gets in or out of the victim any more; it stays alive (until its own side downs itself).
            await Throttle(victim, [nodes[0].Address, nodes[1].Address], Blackhole.Instance);
            gate.Release();

            var outcome = await CoordinatorOutcome(nodes.Take(2));
            Report(nameof(Blackholed_worker_node_is_worked_around), clock, outcome);

            AssertOracle(expected, outcome);
            AssertHostsAWorker(outcome, nodes[0]);
            var cutOff = Detected(outcome).Where(f => f["kind"]!.GetValue<string>() is "node-unreachable" or "worker-silent"
                && f["subject"]!.GetValue<string>().Contains(victim.Address.ToString())).ToList();
            Assert.True(cutOff.Count > 0, $"the blackholed {victim.Address} is not in faults.detected: {Describe(outcome)}");
        }
        finally
        {
            gate.Release();
            if (victim is not null)
            {
                try
                {
                    await Throttle(victim, [nodes[0].Address, nodes[1].Address], Unthrottled.Instance);
                }
                catch (Exception e)
                {
                    // The victim downed itself and may be gone already; healing it is then moot.
                    output.WriteLine($"heal: {e.GetType().Name}: {e.Message}");
                }
            }
            await DisposeAll(nodes);
        }
    }

    [Fact]
    public async Task Coordinator_node_crash_resumes_from_the_newest_checkpoint()
    {
        var dir = Directory.CreateTempSubdirectory("distbp-faults-").FullName;
        var options = Options(dir, checkpointEvery: 5);
        var expected = Oracle(Options());
        StepGate[] gates = [new(holdAt: 7), new(), new()];
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        Task? terminated = null;
        try
        {
            // min-nodes 2: the new incarnation must be able to start with the two survivors.
            await StartNodes(3, i => Context(options, gates[i], minNodes: 2, nodes: 3), throttler: true, into: nodes);
            await gates[0].Reached.WaitAsync(RunDeadline);
            await AwaitConvergence(nodes);
            var old = nodes[0];
            // Held after applying step 7 (checkpoint of step 5 on disk): cut the node off, then kill it. Its coordinator
            // stays frozen until the survivors are done, so nothing it does after the crash can reach them.
            await Throttle(old, [nodes[1].Address, nodes[2].Address], Blackhole.Instance);
            terminated = old.System.Terminate();

            var outcome = await CoordinatorOutcome(nodes.Skip(1));
            Report(nameof(Coordinator_node_crash_resumes_from_the_newest_checkpoint), clock, outcome);

            AssertOracle(expected, outcome);
            var resumed = outcome.Summary!["resumed_from_step"]?.GetValue<long>();
            Assert.True(resumed is >= 5 and <= 8, $"resumed_from_step = {resumed}: {outcome.Summary.ToJsonString()}");
            Assert.Contains(Detected(outcome), f => f["kind"]!.GetValue<string>() == "resumed-from-checkpoint");
            // The new incarnation replayed from the checkpoint: it ran fewer steps than the whole job.
            Assert.True(outcome.Result!.StepsRun < expected.Steps, $"steps run {outcome.Result.StepsRun}");
            Assert.Equal(expected.Steps - resumed, outcome.Result.StepsRun);
        }
        finally
        {
            gates[0].Release();
            if (terminated is not null)
            {
                await Task.WhenAny(terminated, Task.Delay(TimeSpan.FromSeconds(60)));
            }
            await DisposeAll(nodes);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Nan_from_one_worker_is_recomputed_elsewhere_and_never_applied()
    {
        var options = Options();
        var expected = Oracle(options);
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        try
        {
            await StartNodes(3, i => Context(options, new StepGate(), minNodes: 3, nodes: 3,
                faults: i == 1 ? new FaultInjection { NanAtStep = 3 } : null), into: nodes);

            var outcome = await CoordinatorOutcome(nodes);
            Report(nameof(Nan_from_one_worker_is_recomputed_elsewhere_and_never_applied), clock, outcome);

            AssertHostsAWorker(outcome, nodes[1]);
            AssertOracle(expected, outcome);
            var nan = Assert.Single(Detected(outcome), f => f["kind"]!.GetValue<string>() == "non-finite-result");
            Assert.Equal(3, nan["step"]!.GetValue<long>());
            // One bad result is not a repeat offence: nobody was excluded.
            Assert.Empty(outcome.Summary!["excluded_workers"]!.AsObject());
        }
        finally
        {
            await DisposeAll(nodes);
        }
    }

    [Fact]
    public async Task Straggler_gets_a_speculative_copy_and_the_first_result_wins()
    {
        var options = Options();
        var expected = Oracle(options);
        var slowBy = TimeSpan.FromSeconds(3);
        // Ten fault-free steps first: the deadline is 3 × their median, which the first (JIT-cold) steps would inflate.
        const int slowFrom = 10;
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        try
        {
            await StartNodes(3, i => Context(options, new StepGate(), minNodes: 3, nodes: 3,
                faults: i == 1 ? new FaultInjection { SlowFromStep = slowFrom, SlowBy = slowBy } : null), into: nodes);

            var outcome = await CoordinatorOutcome(nodes);
            var elapsed = clock.Elapsed;
            Report(nameof(Straggler_gets_a_speculative_copy_and_the_first_result_wins), clock, outcome);

            AssertHostsAWorker(outcome, nodes[1]);
            AssertOracle(expected, outcome);
            Assert.Contains(Detected(outcome), f => f["kind"]!.GetValue<string>() == "straggler");
            // Waiting for the straggler would take (32 - 10) × 3 s = 66 s; copies must win by far.
            var waitingBound = (expected.Steps - slowFrom) * slowBy / 2;
            Assert.True(elapsed < waitingBound, $"{elapsed.TotalSeconds:F1} s is not well below {waitingBound.TotalSeconds:F0} s");
        }
        finally
        {
            await DisposeAll(nodes);
        }
    }

    [Fact]
    public async Task A_slow_corrupt_worker_is_caught_by_its_speculative_copy()
    {
        // Long enough that the slow worker's late results (1.5 s) arrive while the others still train without it: with
        // the data channel a step of this small model takes about a millisecond, so 60 epochs (960 steps) once ended
        // first; 300 epochs are 4,800 steps, seconds even on a fast machine.
        var options = Options() with { Epochs = 300 };
        var expected = Oracle(options);
        const int from = 10;
        var nodes = new List<ClusterNode>();
        var clock = Stopwatch.StartNew();
        try
        {
            // Node 1 is slow (so its slices get copies) and wrong (finite, so only the cross-check can tell). Its results
            // come 1.2 s after the tests' 300 ms straggler deadline: a copy must win every race, even on a loaded machine.
            await StartNodes(3, i => Context(options, new StepGate(), minNodes: 3, nodes: 3,
                faults: i == 1
                    ? new FaultInjection { SlowFromStep = from, SlowBy = TimeSpan.FromMilliseconds(1500), CorruptFromStep = from }
                    : null), into: nodes);

            var outcome = await CoordinatorOutcome(nodes);
            Report(nameof(A_slow_corrupt_worker_is_caught_by_its_speculative_copy), clock, outcome);

            AssertHostsAWorker(outcome, nodes[1]);
            // The copies win every race, so the corrupt sums never enter the tree.
            AssertOracle(expected, outcome);
            Assert.Contains(Detected(outcome), f => f["kind"]!.GetValue<string>() == "duplicate-mismatch");
        }
        finally
        {
            await DisposeAll(nodes);
        }
    }
}
