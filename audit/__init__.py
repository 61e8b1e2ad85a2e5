"""The audit trail's rows: hash-chained records written in the transaction they describe, and counted
refusals (``audit.trail``). Checkpoints signed in the HSM and stamped by the TSA, and verification of the
whole trail, sit in the shell (``racentre.audit``), which has the HSM and the TSA at hand."""
