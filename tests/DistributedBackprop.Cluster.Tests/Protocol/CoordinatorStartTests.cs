using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Protocol;

/// <summary>
/// Where a coordinator that starts cannot, or need not, run the job: the run folder it cannot write (bad input when the
/// node was just started with it, a fault when the coordinator took over), and a run that has already finished.
/// </summary>
public sealed class CoordinatorStartTests : TestKit, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("distbp-coordinator-start-").FullName;

    public CoordinatorStartTests() : base(SingleNodeCluster("coordinator-start"))
    {
    }

    void IDisposable.Dispose()
    {
        Directory.Delete(_folder, recursive: true);
        Shutdown();
    }

    private NodeContext NodeContext(string runDir)
    {
        var options = TinyOptions(1, 1);
        return new NodeContext(new JobSpec(options, Subset(64, 10), new JobOutputs(null, null, 1, 1) { RunDir = runDir, Command = "node" },
            localWorkers: 1));
    }

    /// <summary>A run folder under a file: creating it fails.</summary>
    private string UnreachableRunDir()
    {
        var file = Path.Combine(_folder, "not-a-folder");
        File.WriteAllText(file, "");
        return Path.Combine(file, "run");
    }

    private IActorRef StartCoordinator(NodeContext context) =>
        Sys.ActorOf(Props.Create(() => new TrainingCoordinator(context, CreateTestProbe().Ref, CreateTestProbe().Ref)));

    [Fact]
    public async Task A_node_started_with_a_run_folder_it_cannot_write_is_refused_as_bad_input()
    {
        var context = NodeContext(UnreachableRunDir());
        StartCoordinator(context);
        var outcome = await context.Outcome.WaitAsync(Patience);
        Assert.Equal(JobStatus.Refused, outcome.Status);
        Assert.Equal(RefusedInput.RunFolder, outcome.About);
    }

    [Fact]
    public async Task A_coordinator_that_took_over_on_a_node_that_cannot_reach_the_run_folder_fails_the_job_for_every_node_with_the_resume_folder()
    {
        var runDir = UnreachableRunDir();
        var context = NodeContext(runDir);
        context.AcceptedByCoordinator = true; // an earlier coordinator had accepted this node: this one took over
        var coordinator = StartCoordinator(context);

        var outcome = await context.Outcome.WaitAsync(Patience);
        Assert.Equal(JobStatus.Failed, outcome.Status);
        Assert.Equal(runDir, outcome.ResumeFrom);
        // Every node's agent registers again with the new coordinator, and is told that the job failed and where it resumes.
        coordinator.Tell(new RegisterNode(Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString(), context.Spec.ConfigHash), TestActor);
        var failed = ExpectMsg<JobFinished>(Patience);
        Assert.Equal((JobStatus.Failed, runDir), (failed.Status, failed.ResumeFrom));
    }

    [Fact]
    public async Task A_coordinator_that_starts_after_its_run_has_finished_ends_at_once_and_tells_the_nodes()
    {
        var runDir = Path.Combine(_folder, "finished");
        var context = NodeContext(runDir);
        Directory.CreateDirectory(runDir);
        File.WriteAllText(Path.Combine(runDir, "summary.json"),
            $$"""{"config_hash": "{{context.Spec.ConfigHash}}", "weights_sha256": "abc"}""");
        var coordinator = StartCoordinator(context);

        var outcome = await context.Outcome.WaitAsync(Patience);
        Assert.Equal(JobStatus.Finished, outcome.Status);
        coordinator.Tell(new RegisterNode(Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString(), context.Spec.ConfigHash), TestActor);
        Assert.Equal(JobStatus.Finished, ExpectMsg<JobFinished>(Patience).Status);
        Assert.False(File.Exists(Path.Combine(runDir, "config.json")), "the finished run's folder was written again");
    }

    [Fact]
    public void Another_runs_summary_in_the_folder_does_not_end_the_job()
    {
        var runDir = Path.Combine(_folder, "other");
        var context = NodeContext(runDir);
        Directory.CreateDirectory(runDir);
        File.WriteAllText(Path.Combine(runDir, "summary.json"), """{"config_hash": "000000000000", "weights_sha256": "abc"}""");
        Assert.Null(Resume.AlreadyFinished(context.Spec));
    }
}
