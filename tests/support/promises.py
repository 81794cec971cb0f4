"""What each lesson promises, in a learner's words, and the tests that
check each promise: the rows of `make grade`'s scorecard
(tests/support/scorecard.py).

A promise names tests as "file::test" patterns (fnmatch, parameters
left out). A test is counted under the first promise of its stage that
names it; the tests of a stage that no promise names are what the
earlier lessons promised, and the scorecard lists them by file.
tests/test_lab.py checks that every pattern names a test.
"""

PROMISES = {
    "v0.1": [
        ("listens on the port it prints, and says why when it cannot", [
            "test_lifecycle.py::test_listens_on_the_port_it_prints",
            "test_lifecycle.py::test_bad_port_argument",
            "test_lifecycle.py::test_port_in_use_is_an_error_not_a_hang"]),
        ("echoes every byte back, each client its own", [
            "test_echo.py::*"]),
        ("a named thread per client, and every thread and descriptor "
         "back when clients leave", [
             "test_lifecycle.py::test_one_named_reader_thread_per_client",
             "test_lifecycle.py::test_every_thread_but_main_is_named",
             "test_lifecycle.py::test_connect_close_cycles_leak_nothing",
             "test_lifecycle.py::test_survives_a_client_that_resets",
             "test_lifecycle.py::test_descriptors_are_close_on_exec"]),
        ("out of descriptors, it sheds new clients and recovers", [
            "test_lifecycle.py::test_out_of_descriptors_*",
            "test_lifecycle.py::test_last_descriptor_taken_*"]),
        ("SIGINT or SIGTERM stops it with status 0", [
            "test_lifecycle.py::test_signal_stops_with_status_0",
            "test_lifecycle.py::test_client_threads_block_sigint_and_sigterm",
            "test_signals.py::*"]),
    ],
    "v0.2": [
        ("a connection says `conn N started, remote ADDR` and its end once", [
            "test_lifecycle.py::test_each_connection_says_*"]),
        ("from the client's side nothing changes: every byte echoed", [
            "test_echo.py::*"]),
    ],
    "v0.3": [
        ("pre_handle, handle and post_handle run in that order", [
            "test_router_steps.py::test_three_steps_in_order"]),
        ("every chunk read gets its own three lines", [
            "test_router_steps.py::test_every_chunk_gets_*",
            "test_router_steps.py::test_a_large_write_is_answered_*"]),
        ("clients are served side by side, and one leaving or resetting "
         "disturbs no other", [
             "test_router_steps.py::test_50_concurrent_clients",
             "test_router_steps.py::test_client_leaving_mid_stream_*",
             "test_router_steps.py::test_clients_that_reset_mid_stream"]),
    ],
    "v0.4": [
        ("conf/zinc.json gives the name, address, port and limits; "
         "defaults without it", [
             "test_config.py::test_name_and_version_in_the_log",
             "test_config.py::test_default_version_is_the_stage",
             "test_config.py::test_c_option_names_the_file",
             "test_config.py::test_missing_file_means_defaults",
             "test_config.py::test_max_packet_size_ceiling_is_allowed"]),
        ("a bad file or value is named exactly, with exit status 2", [
            "test_config.py::test_invalid_json_*",
            "test_config.py::test_bad_value_names_the_key",
            "test_config.py::test_control_characters_*",
            "test_config.py::test_top_level_must_be_an_object",
            "test_config.py::test_unreadable_config_is_an_error",
            "test_config.py::test_config_that_is_a_fifo_*",
            "test_config.py::test_bad_command_line"]),
        ("an unknown key is a warning, not an error", [
            "test_config.py::test_unknown_key_is_a_warning",
            "test_config.py::test_*_unknown_before_*"]),
    ],
    "v0.5": [
        ("a reply is one frame, byte for byte: length, id, body", [
            "test_framing.py::test_reply_bytes_on_the_wire",
            "test_framing.py::test_empty_body_is_a_message",
            "test_zc.py::test_send_to_v05_needs_reply_1",
            "test_zc.py::test_ping_prints_the_stats"]),
        ("a frame is read whole however TCP cuts it, and pipelined frames "
         "are answered in order", [
             "test_framing.py::test_frame_split_byte_by_byte",
             "test_framing.py::test_several_frames_in_one_write",
             "test_framing.py::test_2000_pipelined_*",
             "test_framing.py::test_100_concurrent_connections"]),
        ("MaxPacketSize: a bigger frame closes only its own connection, "
         "and costs no memory", [
             "test_framing.py::test_body_of_exactly_max_packet_size",
             "test_framing.py::test_max_packet_size_*",
             "test_framing.py::test_huge_length_from_garbage_is_refused",
             "test_framing.py::test_header_claiming_1_gib_*",
             "test_framing.py::test_8_mib_body_*"]),
        ("a broken or reset stream closes only that connection", [
            "test_framing.py::test_truncated_frame_*",
            "test_framing.py::test_clients_that_reset_mid_pipeline",
            "test_framing.py::test_half_close_gets_every_reply_then_eof"]),
        ("sends from many threads never interleave; the log stays honest", [
            "test_framing.py::test_send_msg_from_many_threads_*",
            "test_framing.py::test_client_bytes_cannot_forge_log_lines",
            "test_framing.py::test_no_log_line_per_request_*"]),
    ],
    "v0.6": [
        ("msg id 0 is ping, msg id 1 is hello", [
            "test_routing_by_id.py::test_id_0_is_ping",
            "test_routing_by_id.py::test_id_1_is_hello",
            "test_zc.py::test_send_to_the_routers"]),
        ("an unknown id is logged once and the connection stays", [
            "test_routing_by_id.py::test_unknown_id_*"]),
        ("adding a router twice for one id is an error", [
            "test_routing_by_id.py::test_adding_a_router_twice_*"]),
    ],
    "v0.7": [
        ("a writer thread per client, beside its reader, named by its id", [
            "test_read_write_split.py::test_reader_and_writer_threads_*",
            "test_lifecycle.py::test_one_named_reader_thread_per_client"]),
        ("a graceful end delivers every reply, then FIN", [
            "test_read_write_split.py::test_half_close_after_n_*",
            "test_read_write_split.py::test_slow_reader_after_half_close_*",
            "test_read_write_split.py::test_held_connection_can_be_used_*"]),
        ("an abort drops the queue and wakes both threads", [
            "test_read_write_split.py::test_oversized_frame_aborts_*"]),
        ("threads and descriptors back to baseline", [
            "test_read_write_split.py::test_1000_mixed_connect_close_*",
            "test_read_write_split.py::test_client_that_never_reads_then_*",
            "test_read_write_split.py::test_sigterm_during_load_exits_0"]),
        ("zn_chan, the bounded channel: every unit test of chan.c", [
            "test_chan.py::*"]),
        ("MaxMsgChanLen in conf/zinc.json", [
            "test_config.py::test_*max_msg_chan_len*"]),
    ],
    "v0.8": [
        ("WorkerPoolSize named workers start with the server", [
            "test_workers.py::test_worker_threads_start_with_the_server",
            "test_workers.py::test_workers_are_named_by_the_ready_line",
            "test_config.py::test_*worker_pool*"]),
        ("each connection's requests are handled in order", [
            "test_workers.py::test_each_connection_keeps_its_order_*",
            "test_workers.py::test_half_close_gets_every_reply_then_eof"]),
        ("a full worker queue slows the client and drops nothing", [
            "test_workers.py::test_full_worker_queue_*",
            "test_workers.py::test_oversize_frame_after_pipelined_requests"]),
        ("one slow client never stalls the others; one too slow is "
         "stopped, once", [
             "test_workers.py::test_client_that_never_reads_loses_*",
             "test_slow_clients.py::*"]),
        ("stop and connect/close cycles leave nothing behind", [
            "test_workers.py::test_sigterm_while_50_clients_*",
            "test_workers.py::test_1000_connect_close_cycles_*"]),
    ],
    "v0.9": [
        ("MaxConn: a client over the limit is closed, with one line per "
         "episode", [
             "test_connmgr.py::test_max_conn_*",
             "test_connmgr.py::test_connect_storm_*",
             "test_connmgr.py::test_warning_when_rlimit_nofile_*"]),
        ("on_conn_start greets first; on_conn_stop runs once, however the "
         "connection ends", [
             "test_connmgr.py::test_greeting_comes_before_*",
             "test_connmgr.py::test_conn_stopped_once_*",
             "test_zc.py::test_greeting_*",
             "test_zc.py::test_watch_shows_the_greeting_*"]),
        ("the manager counts a connection until its threads are done", [
            "test_connmgr.py::test_connection_counts_until_*",
            "test_connmgr.py::test_1000_connect_close_cycles_*",
            "test_connmgr.py::test_clients_come_and_go_*",
            "test_connmgr.py::test_connmgr_unit"]),
        ("stop with clients connected closes them all and exits 0", [
            "test_connmgr.py::test_sigterm_with_1000_clients_*",
            "test_signals.py::test_sigterm_with_clients_connected_is_clean"]),
    ],
    "v1.0": [
        ("Name and Stage are set from the start; set, get and remove "
         "round-trip any bytes", [
             "test_properties.py::test_name_and_stage_*",
             "test_properties.py::test_set_get_remove_round_trip",
             "test_properties.py::test_unknown_key_is_an_error",
             "test_properties.py::test_empty_value_*",
             "test_properties.py::test_values_hold_any_bytes",
             "test_properties.py::test_a_4_kib_value",
             "test_zc.py::test_property_session_on_one_connection"]),
        ("properties belong to one connection, safe from many threads", [
            "test_properties.py::test_properties_belong_to_one_connection",
            "test_properties.py::test_many_clients_set_and_get_at_once",
            "test_properties.py::test_pipelined_requests_see_*",
            "test_properties.py::test_api_properties_*"]),
        ("limits: 64 keys, key length, no NUL; a bad request gets ERR and "
         "the connection stays", [
             "test_properties.py::test_at_most_64_properties",
             "test_properties.py::test_key_*",
             "test_properties.py::test_malformed_request_*"]),
        ("the stop log lists every property, escaped and cut", [
            "test_properties.py::test_stop_log_*"]),
    ],
    "v1.1": [
        ("threads are the loops, WorkerPoolSize + 1, whatever the clients", [
            "test_event_loop.py::test_threads_are_the_loops_*",
            "test_event_loop.py::test_1000_connect_close_cycles_*",
            "test_lifecycle.py::test_one_named_reader_thread_per_client",
            "test_workers.py::test_worker_threads_start_with_the_server"]),
        ("a slow client or a blocking router stalls only its own loop", [
            "test_event_loop.py::test_a_client_that_never_reads_*",
            "test_event_loop.py::test_a_blocking_router_*",
            "test_slow_clients.py::*"]),
        ("any thread may send; replies arrive whole and in order", [
            "test_event_loop.py::test_send_from_a_foreign_thread",
            "test_event_loop.py::test_a_foreign_burst_*"]),
        ("stop with 10,000 clients exits 0 within 2 s", [
            "test_event_loop.py::test_sigterm_with_10000_*"]),
        ("the log names the poller the build chose", [
            "test_event_loop.py::test_the_log_names_the_poller_*"]),
    ],
}


def promises(stage):
    """The stage's promises, as (title, patterns) pairs."""
    return PROMISES.get(stage, [])
