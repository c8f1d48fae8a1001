"""Talks to the storage array (ONTAP) through one interface, over ZAPI or REST."""
