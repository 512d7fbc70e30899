"""The sandbox that runs generated code: a pool of warm workers (:mod:`.pool`) behind bubblewrap's
namespaces and a cgroup (:mod:`.kernel`), a seccomp filter (:mod:`.seccomp`), the worker that runs
inside (:mod:`.boot`), and how a program ended, in the sandbox's own words (:mod:`.outcome`)."""
