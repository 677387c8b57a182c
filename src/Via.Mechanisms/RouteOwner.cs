using System.Globalization;

namespace Via.Mechanisms;

/// <summary>What a route's owner is named by: <see cref="RouteOwner"/>.</summary>
public enum OwnerKind
{
    /// <summary>The route's own cgroup: only the programs via starts on it (and their children).</summary>
    Cgroup,

    /// <summary>Every socket of a user id, wherever its process runs.</summary>
    Uid,

    /// <summary>Every socket of a group id (the creator's effective group, not its supplementary groups).</summary>
    Gid,
}

/// <summary>
/// Whose packets a route carries. <c>via run</c> routes its program by the route's cgroup (the
/// default: the most precise, only that program), also with <c>--user</c>, which only chooses whom
/// the program runs as. A uid or gid owner routes every socket of that user or group, in whatever
/// cgroup its process is: what standing per-user rules are made of. Only a mechanism that matches
/// packets by owner can carry one (<see cref="IMechanism.MatchesOwners"/>: nft). It is part of the
/// route's key (two owners are two routes) and written in its journal.
/// </summary>
public readonly record struct RouteOwner(OwnerKind Kind, uint Id)
{
    /// <summary>The route's cgroup (the default).</summary>
    public static readonly RouteOwner ByCgroup = default;

    public static RouteOwner ByUid(uint uid) => new(OwnerKind.Uid, uid);

    public static RouteOwner ByGid(uint gid) => new(OwnerKind.Gid, gid);

    public bool IsCgroup => Kind == OwnerKind.Cgroup;

    /// <summary>"cgroup", "uid:1000", "gid:100": in the route's key and journal.</summary>
    public override string ToString() => Kind switch
    {
        OwnerKind.Uid => "uid:" + Id.ToString(CultureInfo.InvariantCulture),
        OwnerKind.Gid => "gid:" + Id.ToString(CultureInfo.InvariantCulture),
        _ => "cgroup",
    };

    /// <summary>The owner <see cref="ToString"/> wrote; null or empty is the cgroup. Throws <see cref="FormatException"/> for anything else.</summary>
    public static RouteOwner Parse(string? text)
    {
        if (string.IsNullOrEmpty(text) || text == "cgroup") return ByCgroup;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && uint.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out uint id))
        {
            switch (text[..colon])
            {
                case "uid": return ByUid(id);
                case "gid": return ByGid(id);
            }
        }
        throw new FormatException($"route owner '{text}' is none of cgroup, uid:N, gid:N");
    }
}
