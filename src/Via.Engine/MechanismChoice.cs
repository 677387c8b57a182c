using Via.Mechanisms;
using Via.Planning;

namespace Via.Engine;

/// <summary>Which mechanism tags a program: the one asked for, or with "auto" the first of <see cref="Registry"/> that works here and can serve it.</summary>
public static class MechanismChoice
{
    public const string Auto = "auto";

    /// <summary>The mechanism, and why it (one line for --verbose). A <see cref="PlanException"/> says why none can serve.</summary>
    /// <param name="direct">--ip was given: only a mechanism that <see cref="IMechanism.AttachesDirectly"/> can serve it, and
    /// with auto that is the one chosen (--ip implies --method netns); another named method is refused.</param>
    /// <param name="only">--only was given: only a mechanism that <see cref="IMechanism.FiltersDestinations"/> can serve it
    /// (auto passes over the others; another named method is refused).</param>
    public static (IMechanism Mechanism, string Why) Choose(string method, HostView host, ProgramImage program, bool direct = false, bool only = false) =>
        Choose(method, host, program, Registry.All, direct, only);

    /// <summary>The same, among <paramref name="candidates"/> (in order).</summary>
    public static (IMechanism Mechanism, string Why) Choose(string method, HostView host, ProgramImage program, IReadOnlyList<IMechanism> candidates, bool direct = false,
        bool only = false)
    {
        if (only)
        {
            if (direct) throw new PlanException("--only and --ip cannot go together: --ip puts the program in a network namespace whose every packet takes the route");
            if (method != Auto && candidates.FirstOrDefault(m => m.Name == method) is { FiltersDestinations: false } whole)
                throw new PlanException(DestinationFilters.Refusal(whole));
            candidates = [.. candidates.Where(m => m.FiltersDestinations)];
        }
        if (direct)
        {
            var attaching = candidates.Where(m => m.AttachesDirectly).ToList();
            if (method != Auto && candidates.FirstOrDefault(m => m.Name == method) is { AttachesDirectly: false } other)
                throw new PlanException($"--ip needs --method {string.Join(" or ", attaching.Select(m => m.Name))}: method {other.Name} has no network namespace of its own to give the program an address in");
            candidates = attaching;
        }
        if (method == Auto)
        {
            var passed = new List<string>();
            foreach (var candidate in candidates)
            {
                var probe = candidate.Probe(host);
                string? refusal = probe.Usable ? candidate.Refuse(program) : null;
                if (probe.Usable && refusal is null)
                    return (candidate, $"auto: {candidate.Summary}; {probe.Detail}{(passed.Count > 0 ? $" (not {string.Join("; not ", passed)})" : "")}");
                passed.Add($"{candidate.Name}: {refusal ?? probe.Detail}");
            }
            throw new PlanException($"no mechanism can tag {program.Path} on this host: {string.Join("; ", passed)}; see 'via doctor'");
        }
        var mechanism = candidates.FirstOrDefault(m => m.Name == method)
            ?? throw new PlanException($"unknown method '{method}'; use one of: {Auto}, {string.Join(", ", candidates.Select(m => m.Name))}");
        var found = mechanism.Probe(host);
        if (!found.Usable) throw new PlanException($"method {mechanism.Name} does not work on this host: {found.Detail}; see 'via doctor', or try --method {Auto}");
        if (mechanism.Refuse(program) is { } why) throw new PlanException($"method {mechanism.Name} cannot run {program.Path}: {why}");
        return (mechanism, $"{mechanism.Summary}; {found.Detail}");
    }
}
