using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Trust;

namespace DistributedBackprop.Cluster.Workers;

/// <summary>
/// One per node: introduces the node to the coordinator (with its configuration hash) once it is up, and ends the
/// node's part of the job when the coordinator refuses it or announces the end.
/// </summary>
public sealed class NodeAgent : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan RegisterEvery = TimeSpan.FromMilliseconds(500);
    private readonly NodeContext _context;
    private readonly JobSpec _spec;
    private readonly IActorRef _coordinator;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);

    public NodeAgent(NodeContext context, IActorRef coordinatorProxy)
    {
        _context = context;
        _spec = context.Spec;
        _coordinator = coordinatorProxy;
        // Registration repeats for the node's whole life: a new coordinator incarnation (the singleton moved) learns
        // the nodes again this way.
        Receive<Register>(_ => _coordinator.Tell(new RegisterNode(_cluster.SelfAddress.ToString(), _spec.ConfigHash)));
        Receive<NodeVerdict>(verdict =>
        {
            if (!FromCoordinator(verdict))
            {
                return;
            }
            if (verdict.Accepted)
            {
                _context.AcceptedByCoordinator = true;
                return;
            }
            _log.Error("refused by the coordinator: {0}", verdict.Reason);
            _context.Ended(new JobOutcome(JobStatus.Refused, verdict.Reason) { About = RefusedInput.TrainingOptions });
        });
        Receive<JobFinished>(finished =>
        {
            if (FromCoordinator(finished) && finished.RunId == _spec.ConfigHash)
            {
                _context.Ended(new JobOutcome(finished.Status, finished.Message) { ResumeFrom = finished.ResumeFrom is "" ? null : finished.ResumeFrom });
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private bool FromCoordinator(object message) => Senders.FromCoordinator(Sender, Context.System, _log, message);

    private sealed class Register
    {
        public static readonly Register Instance = new();
    }

    protected override void PreStart() =>
        _cluster.RegisterOnMemberUp(() =>
        {
            Self.Tell(Register.Instance);
            Timers.StartPeriodicTimer("register", Register.Instance, RegisterEvery);
        });
}
