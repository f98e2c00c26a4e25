namespace DistributedBackprop.Core.Optim;

/// <summary>
/// Learning rate by global step: linear warm-up from lr/warmup to lr over the first <see cref="WarmupSteps"/> steps
/// (Goyal et al., "Accurate, Large Minibatch SGD"), then constant, step decay (×gamma every N steps) or cosine decay
/// to zero over the run.
/// </summary>
public sealed record LearningRateSchedule(float BaseRate, int WarmupSteps, string Decay, int DecayEvery, float DecayFactor,
    long TotalSteps)
{
    public static readonly string[] Decays = ["none", "step", "cosine"];

    public float At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps)
        {
            return BaseRate * (step + 1) / WarmupSteps;
        }
        var after = step - WarmupSteps;
        var span = Math.Max(1, TotalSteps - WarmupSteps);
        return Decay switch
        {
            "step" when DecayEvery > 0 => BaseRate * MathF.Pow(DecayFactor, after / DecayEvery),
            "cosine" => (float)(BaseRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(after, span) / span))),
            _ => BaseRate,
        };
    }
}
