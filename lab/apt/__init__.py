"""The lab's apt repository: equivs stand-ins with NVIDIA's package names, served on the lab bridge.

`build` turns the control files under `lab/apt/packages/*.ctl` into a flat repository (cached by the
hash of the control files); `server` serves it over HTTP; `service` describes that server to
`lab.control`. The repository is unsigned: lab hosts trust it with `[trusted=yes]`, which is right
for a repository that only exists on a host-only bridge and wrong for anything else.
"""
