using System.Net;
using Via.Mechanisms;

namespace Via.Planning;

/// <summary>Where a program's traffic should go, as the user asked for it (--dev, --gateway, --src, --table, --ip),
/// and whose traffic it is (<paramref name="Owner"/>: the route's cgroup for <c>via run</c>; a uid or gid
/// through the engine, for routes that carry every socket of a user or group).</summary>
/// <param name="Direct">--ip: the program's own addresses on IFACE's network (a mechanism that <see cref="Mechanisms.IMechanism.AttachesDirectly"/>); null: none.</param>
/// <param name="Only">--only: the destinations that take the route (the rest keeps the default path); null: all.</param>
/// <param name="Name">The via.conf route it is made from (<c>via up NAME</c>, <c>via run --route NAME</c>); null for one made from options.
/// Part of the route's key: a named route is shared by the launches into it, and only by them.</param>
public sealed record RouteRequest(string Device, IPAddress? Gateway = null, IPAddress? Source = null, uint? Table = null, RouteOwner Owner = default,
    Mechanisms.DirectAttachment? Direct = null, string? Name = null,
    DestinationFilters? Only = null);

/// <summary>The request cannot be planned on this host; the message says what and what to do. Nothing was changed.</summary>
public sealed class PlanException(string message) : Exception(message);
