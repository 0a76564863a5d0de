/* The public API contract (../shared/api.md), checked by the compiler: every function is
 * assigned to a pointer of exactly the type api.md gives it, so a changed name, argument or
 * return type fails the build (-Werror). Generated once from api.md's code blocks; the status
 * numbers are checked at run time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>

static void every_function_has_its_contract_signature(void **state)
{
    (void)state;
    size_t n = 0;
    sn_crypto_key *(*const sn_crypto_key_new_p)(void) = sn_crypto_key_new;
    n += sn_crypto_key_new_p != NULL;
    void (*const sn_crypto_key_free_p)(sn_crypto_key *) = sn_crypto_key_free;
    n += sn_crypto_key_free_p != NULL;
    sn_err (*const sn_crypto_key_load_p)(sn_crypto_key *, const char *, bool) = sn_crypto_key_load;
    n += sn_crypto_key_load_p != NULL;
    sn_err (*const sn_crypto_key_save_p)(const sn_crypto_key *, const char *, bool) =
        sn_crypto_key_save;
    n += sn_crypto_key_save_p != NULL;
    sn_err (*const sn_crypto_key_load_from_string_p)(sn_crypto_key *, const char *, bool) =
        sn_crypto_key_load_from_string;
    n += sn_crypto_key_load_from_string_p != NULL;
    char *(*const sn_crypto_key_save_to_string_p)(const sn_crypto_key *, bool) =
        sn_crypto_key_save_to_string;
    n += sn_crypto_key_save_to_string_p != NULL;
    bool (*const sn_crypto_key_is_public_only_p)(const sn_crypto_key *) =
        sn_crypto_key_is_public_only;
    n += sn_crypto_key_is_public_only_p != NULL;
    sn_x509_cert *(*const sn_x509_cert_new_p)(void) = sn_x509_cert_new;
    n += sn_x509_cert_new_p != NULL;
    void (*const sn_x509_cert_free_p)(sn_x509_cert *) = sn_x509_cert_free;
    n += sn_x509_cert_free_p != NULL;
    sn_err (*const sn_x509_cert_load_p)(sn_x509_cert *, const char *) = sn_x509_cert_load;
    n += sn_x509_cert_load_p != NULL;
    sn_err (*const sn_x509_cert_save_p)(const sn_x509_cert *, const char *) = sn_x509_cert_save;
    n += sn_x509_cert_save_p != NULL;
    sn_err (*const sn_x509_cert_load_from_string_p)(sn_x509_cert *, const char *) =
        sn_x509_cert_load_from_string;
    n += sn_x509_cert_load_from_string_p != NULL;
    char *(*const sn_x509_cert_save_to_string_p)(const sn_x509_cert *) =
        sn_x509_cert_save_to_string;
    n += sn_x509_cert_save_to_string_p != NULL;
    sn_crypto_key *(*const sn_crypto_generate_rsa_p)(int) = sn_crypto_generate_rsa;
    n += sn_crypto_generate_rsa_p != NULL;
    sn_crypto_key *(*const sn_crypto_generate_ec_p)(const char *) = sn_crypto_generate_ec;
    n += sn_crypto_generate_ec_p != NULL;
    sn_x509_cert *(*const sn_crypto_generate_self_signed_certificate_p)(
        const sn_crypto_key *, const char *, const char *, const char *) =
        sn_crypto_generate_self_signed_certificate;
    n += sn_crypto_generate_self_signed_certificate_p != NULL;
    sn_err (*const sn_crypto_generate_random_bytes_p)(void *, size_t) =
        sn_crypto_generate_random_bytes;
    n += sn_crypto_generate_random_bytes_p != NULL;
    sn_tls_options *(*const sn_tls_options_client_p)(const sn_x509_cert *, const char *) =
        sn_tls_options_client;
    n += sn_tls_options_client_p != NULL;
    sn_tls_options *(*const sn_tls_options_client_unsafe_p)(const sn_x509_cert *) =
        sn_tls_options_client_unsafe;
    n += sn_tls_options_client_unsafe_p != NULL;
    sn_tls_options *(*const sn_tls_options_server_p)(const sn_crypto_key *, const sn_x509_cert *) =
        sn_tls_options_server;
    n += sn_tls_options_server_p != NULL;
    void (*const sn_tls_options_free_p)(sn_tls_options *) = sn_tls_options_free;
    n += sn_tls_options_free_p != NULL;
    bool (*const sn_tls_options_is_server_p)(const sn_tls_options *) = sn_tls_options_is_server;
    n += sn_tls_options_is_server_p != NULL;
    bool (*const sn_tls_options_is_unsafe_client_p)(const sn_tls_options *) =
        sn_tls_options_is_unsafe_client;
    n += sn_tls_options_is_unsafe_client_p != NULL;
    const char *(*const sn_tls_options_get_common_name_override_p)(const sn_tls_options *) =
        sn_tls_options_get_common_name_override;
    n += sn_tls_options_get_common_name_override_p != NULL;
    sn_udp_peer *(*const sn_udp_peer_new_p)(void) = sn_udp_peer_new;
    n += sn_udp_peer_new_p != NULL;
    void (*const sn_udp_peer_free_p)(sn_udp_peer *) = sn_udp_peer_free;
    n += sn_udp_peer_free_p != NULL;
    sn_err (*const sn_udp_peer_bind_p)(sn_udp_peer *, int, const char *, int) = sn_udp_peer_bind;
    n += sn_udp_peer_bind_p != NULL;
    sn_err (*const sn_udp_peer_connect_to_host_p)(sn_udp_peer *, const char *, int) =
        sn_udp_peer_connect_to_host;
    n += sn_udp_peer_connect_to_host_p != NULL;
    bool (*const sn_udp_peer_is_bound_p)(const sn_udp_peer *) = sn_udp_peer_is_bound;
    n += sn_udp_peer_is_bound_p != NULL;
    bool (*const sn_udp_peer_is_socket_connected_p)(const sn_udp_peer *) =
        sn_udp_peer_is_socket_connected;
    n += sn_udp_peer_is_socket_connected_p != NULL;
    sn_err (*const sn_udp_peer_set_dest_address_p)(sn_udp_peer *, const char *, int) =
        sn_udp_peer_set_dest_address;
    n += sn_udp_peer_set_dest_address_p != NULL;
    sn_err (*const sn_udp_peer_put_packet_p)(sn_udp_peer *, const void *, size_t) =
        sn_udp_peer_put_packet;
    n += sn_udp_peer_put_packet_p != NULL;
    int (*const sn_udp_peer_get_available_packet_count_p)(sn_udp_peer *) =
        sn_udp_peer_get_available_packet_count;
    n += sn_udp_peer_get_available_packet_count_p != NULL;
    sn_err (*const sn_udp_peer_get_packet_p)(sn_udp_peer *, void *, size_t, size_t *) =
        sn_udp_peer_get_packet;
    n += sn_udp_peer_get_packet_p != NULL;
    const char *(*const sn_udp_peer_get_packet_ip_p)(const sn_udp_peer *) =
        sn_udp_peer_get_packet_ip;
    n += sn_udp_peer_get_packet_ip_p != NULL;
    int (*const sn_udp_peer_get_packet_port_p)(const sn_udp_peer *) = sn_udp_peer_get_packet_port;
    n += sn_udp_peer_get_packet_port_p != NULL;
    int (*const sn_udp_peer_get_local_port_p)(const sn_udp_peer *) = sn_udp_peer_get_local_port;
    n += sn_udp_peer_get_local_port_p != NULL;
    sn_err (*const sn_udp_peer_wait_p)(sn_udp_peer *, int) = sn_udp_peer_wait;
    n += sn_udp_peer_wait_p != NULL;
    sn_err (*const sn_udp_peer_set_broadcast_enabled_p)(sn_udp_peer *, bool) =
        sn_udp_peer_set_broadcast_enabled;
    n += sn_udp_peer_set_broadcast_enabled_p != NULL;
    sn_err (*const sn_udp_peer_join_multicast_group_p)(sn_udp_peer *, const char *, const char *) =
        sn_udp_peer_join_multicast_group;
    n += sn_udp_peer_join_multicast_group_p != NULL;
    sn_err (*const sn_udp_peer_leave_multicast_group_p)(sn_udp_peer *, const char *, const char *) =
        sn_udp_peer_leave_multicast_group;
    n += sn_udp_peer_leave_multicast_group_p != NULL;
    void (*const sn_udp_peer_close_p)(sn_udp_peer *) = sn_udp_peer_close;
    n += sn_udp_peer_close_p != NULL;
    sn_udp_server *(*const sn_udp_server_new_p)(void) = sn_udp_server_new;
    n += sn_udp_server_new_p != NULL;
    void (*const sn_udp_server_free_p)(sn_udp_server *) = sn_udp_server_free;
    n += sn_udp_server_free_p != NULL;
    sn_err (*const sn_udp_server_listen_p)(sn_udp_server *, int, const char *) =
        sn_udp_server_listen;
    n += sn_udp_server_listen_p != NULL;
    sn_err (*const sn_udp_server_poll_p)(sn_udp_server *) = sn_udp_server_poll;
    n += sn_udp_server_poll_p != NULL;
    bool (*const sn_udp_server_is_connection_available_p)(const sn_udp_server *) =
        sn_udp_server_is_connection_available;
    n += sn_udp_server_is_connection_available_p != NULL;
    sn_udp_peer *(*const sn_udp_server_take_connection_p)(sn_udp_server *) =
        sn_udp_server_take_connection;
    n += sn_udp_server_take_connection_p != NULL;
    void (*const sn_udp_server_set_max_pending_connections_p)(sn_udp_server *, int) =
        sn_udp_server_set_max_pending_connections;
    n += sn_udp_server_set_max_pending_connections_p != NULL;
    int (*const sn_udp_server_get_max_pending_connections_p)(const sn_udp_server *) =
        sn_udp_server_get_max_pending_connections;
    n += sn_udp_server_get_max_pending_connections_p != NULL;
    bool (*const sn_udp_server_is_listening_p)(const sn_udp_server *) = sn_udp_server_is_listening;
    n += sn_udp_server_is_listening_p != NULL;
    int (*const sn_udp_server_get_local_port_p)(const sn_udp_server *) =
        sn_udp_server_get_local_port;
    n += sn_udp_server_get_local_port_p != NULL;
    void (*const sn_udp_server_stop_p)(sn_udp_server *) = sn_udp_server_stop;
    n += sn_udp_server_stop_p != NULL;
    sn_dtls_server *(*const sn_dtls_server_new_p)(void) = sn_dtls_server_new;
    n += sn_dtls_server_new_p != NULL;
    void (*const sn_dtls_server_free_p)(sn_dtls_server *) = sn_dtls_server_free;
    n += sn_dtls_server_free_p != NULL;
    sn_err (*const sn_dtls_server_setup_p)(sn_dtls_server *, const sn_tls_options *) =
        sn_dtls_server_setup;
    n += sn_dtls_server_setup_p != NULL;
    sn_dtls_peer *(*const sn_dtls_server_take_connection_p)(sn_dtls_server *, sn_udp_peer *) =
        sn_dtls_server_take_connection;
    n += sn_dtls_server_take_connection_p != NULL;
    sn_dtls_peer *(*const sn_dtls_peer_new_p)(void) = sn_dtls_peer_new;
    n += sn_dtls_peer_new_p != NULL;
    void (*const sn_dtls_peer_free_p)(sn_dtls_peer *) = sn_dtls_peer_free;
    n += sn_dtls_peer_free_p != NULL;
    sn_err (*const sn_dtls_peer_connect_to_peer_p)(sn_dtls_peer *, sn_udp_peer *, const char *,
                                                   const sn_tls_options *) =
        sn_dtls_peer_connect_to_peer;
    n += sn_dtls_peer_connect_to_peer_p != NULL;
    void (*const sn_dtls_peer_poll_p)(sn_dtls_peer *) = sn_dtls_peer_poll;
    n += sn_dtls_peer_poll_p != NULL;
    sn_dtls_status (*const sn_dtls_peer_get_status_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_status;
    n += sn_dtls_peer_get_status_p != NULL;
    int (*const sn_dtls_peer_get_available_packet_count_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_available_packet_count;
    n += sn_dtls_peer_get_available_packet_count_p != NULL;
    sn_err (*const sn_dtls_peer_get_packet_p)(sn_dtls_peer *, void *, size_t, size_t *) =
        sn_dtls_peer_get_packet;
    n += sn_dtls_peer_get_packet_p != NULL;
    sn_err (*const sn_dtls_peer_put_packet_p)(sn_dtls_peer *, const void *, size_t) =
        sn_dtls_peer_put_packet;
    n += sn_dtls_peer_put_packet_p != NULL;
    int (*const sn_dtls_peer_get_max_packet_size_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_max_packet_size;
    n += sn_dtls_peer_get_max_packet_size_p != NULL;
    const char *(*const sn_dtls_peer_get_packet_ip_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_packet_ip;
    n += sn_dtls_peer_get_packet_ip_p != NULL;
    int (*const sn_dtls_peer_get_packet_port_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_packet_port;
    n += sn_dtls_peer_get_packet_port_p != NULL;
    uint64_t (*const sn_dtls_peer_get_last_packet_time_ms_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_last_packet_time_ms;
    n += sn_dtls_peer_get_last_packet_time_ms_p != NULL;
    void (*const sn_dtls_peer_disconnect_from_peer_p)(sn_dtls_peer *) =
        sn_dtls_peer_disconnect_from_peer;
    n += sn_dtls_peer_disconnect_from_peer_p != NULL;
    const char *(*const sn_dtls_peer_get_error_message_p)(const sn_dtls_peer *) =
        sn_dtls_peer_get_error_message;
    n += sn_dtls_peer_get_error_message_p != NULL;
    sn_tcp_peer *(*const sn_tcp_peer_new_p)(void) = sn_tcp_peer_new;
    n += sn_tcp_peer_new_p != NULL;
    void (*const sn_tcp_peer_free_p)(sn_tcp_peer *) = sn_tcp_peer_free;
    n += sn_tcp_peer_free_p != NULL;
    sn_err (*const sn_tcp_peer_bind_p)(sn_tcp_peer *, int, const char *) = sn_tcp_peer_bind;
    n += sn_tcp_peer_bind_p != NULL;
    sn_err (*const sn_tcp_peer_connect_to_host_p)(sn_tcp_peer *, const char *, int) =
        sn_tcp_peer_connect_to_host;
    n += sn_tcp_peer_connect_to_host_p != NULL;
    sn_err (*const sn_tcp_peer_poll_p)(sn_tcp_peer *) = sn_tcp_peer_poll;
    n += sn_tcp_peer_poll_p != NULL;
    sn_tcp_status (*const sn_tcp_peer_get_status_p)(const sn_tcp_peer *) = sn_tcp_peer_get_status;
    n += sn_tcp_peer_get_status_p != NULL;
    const char *(*const sn_tcp_peer_get_connected_host_p)(const sn_tcp_peer *) =
        sn_tcp_peer_get_connected_host;
    n += sn_tcp_peer_get_connected_host_p != NULL;
    int (*const sn_tcp_peer_get_connected_port_p)(const sn_tcp_peer *) =
        sn_tcp_peer_get_connected_port;
    n += sn_tcp_peer_get_connected_port_p != NULL;
    int (*const sn_tcp_peer_get_local_port_p)(const sn_tcp_peer *) = sn_tcp_peer_get_local_port;
    n += sn_tcp_peer_get_local_port_p != NULL;
    sn_err (*const sn_tcp_peer_set_no_delay_p)(sn_tcp_peer *, bool) = sn_tcp_peer_set_no_delay;
    n += sn_tcp_peer_set_no_delay_p != NULL;
    int (*const sn_tcp_peer_get_available_bytes_p)(sn_tcp_peer *) = sn_tcp_peer_get_available_bytes;
    n += sn_tcp_peer_get_available_bytes_p != NULL;
    sn_err (*const sn_tcp_peer_put_data_p)(sn_tcp_peer *, const void *, size_t) =
        sn_tcp_peer_put_data;
    n += sn_tcp_peer_put_data_p != NULL;
    sn_err (*const sn_tcp_peer_put_partial_data_p)(sn_tcp_peer *, const void *, size_t, size_t *) =
        sn_tcp_peer_put_partial_data;
    n += sn_tcp_peer_put_partial_data_p != NULL;
    sn_err (*const sn_tcp_peer_get_data_p)(sn_tcp_peer *, void *, size_t) = sn_tcp_peer_get_data;
    n += sn_tcp_peer_get_data_p != NULL;
    sn_err (*const sn_tcp_peer_get_partial_data_p)(sn_tcp_peer *, void *, size_t, size_t *) =
        sn_tcp_peer_get_partial_data;
    n += sn_tcp_peer_get_partial_data_p != NULL;
    void (*const sn_tcp_peer_disconnect_from_host_p)(sn_tcp_peer *) =
        sn_tcp_peer_disconnect_from_host;
    n += sn_tcp_peer_disconnect_from_host_p != NULL;
    const char *(*const sn_tcp_peer_get_error_message_p)(const sn_tcp_peer *) =
        sn_tcp_peer_get_error_message;
    n += sn_tcp_peer_get_error_message_p != NULL;
    sn_tcp_server *(*const sn_tcp_server_new_p)(void) = sn_tcp_server_new;
    n += sn_tcp_server_new_p != NULL;
    void (*const sn_tcp_server_free_p)(sn_tcp_server *) = sn_tcp_server_free;
    n += sn_tcp_server_free_p != NULL;
    sn_err (*const sn_tcp_server_listen_p)(sn_tcp_server *, int, const char *) =
        sn_tcp_server_listen;
    n += sn_tcp_server_listen_p != NULL;
    bool (*const sn_tcp_server_is_connection_available_p)(const sn_tcp_server *) =
        sn_tcp_server_is_connection_available;
    n += sn_tcp_server_is_connection_available_p != NULL;
    sn_tcp_peer *(*const sn_tcp_server_take_connection_p)(sn_tcp_server *) =
        sn_tcp_server_take_connection;
    n += sn_tcp_server_take_connection_p != NULL;
    bool (*const sn_tcp_server_is_listening_p)(const sn_tcp_server *) = sn_tcp_server_is_listening;
    n += sn_tcp_server_is_listening_p != NULL;
    int (*const sn_tcp_server_get_local_port_p)(const sn_tcp_server *) =
        sn_tcp_server_get_local_port;
    n += sn_tcp_server_get_local_port_p != NULL;
    void (*const sn_tcp_server_stop_p)(sn_tcp_server *) = sn_tcp_server_stop;
    n += sn_tcp_server_stop_p != NULL;
    sn_tls_stream *(*const sn_tls_stream_new_p)(void) = sn_tls_stream_new;
    n += sn_tls_stream_new_p != NULL;
    void (*const sn_tls_stream_free_p)(sn_tls_stream *) = sn_tls_stream_free;
    n += sn_tls_stream_free_p != NULL;
    sn_err (*const sn_tls_stream_connect_to_stream_p)(sn_tls_stream *, sn_tcp_peer *, const char *,
                                                      const sn_tls_options *) =
        sn_tls_stream_connect_to_stream;
    n += sn_tls_stream_connect_to_stream_p != NULL;
    sn_err (*const sn_tls_stream_accept_stream_p)(
        sn_tls_stream *, sn_tcp_peer *, const sn_tls_options *) = sn_tls_stream_accept_stream;
    n += sn_tls_stream_accept_stream_p != NULL;
    void (*const sn_tls_stream_poll_p)(sn_tls_stream *) = sn_tls_stream_poll;
    n += sn_tls_stream_poll_p != NULL;
    sn_tls_status (*const sn_tls_stream_get_status_p)(const sn_tls_stream *) =
        sn_tls_stream_get_status;
    n += sn_tls_stream_get_status_p != NULL;
    int (*const sn_tls_stream_get_available_bytes_p)(sn_tls_stream *) =
        sn_tls_stream_get_available_bytes;
    n += sn_tls_stream_get_available_bytes_p != NULL;
    sn_err (*const sn_tls_stream_put_data_p)(sn_tls_stream *, const void *, size_t) =
        sn_tls_stream_put_data;
    n += sn_tls_stream_put_data_p != NULL;
    sn_err (*const sn_tls_stream_put_partial_data_p)(sn_tls_stream *, const void *, size_t,
                                                     size_t *) = sn_tls_stream_put_partial_data;
    n += sn_tls_stream_put_partial_data_p != NULL;
    sn_err (*const sn_tls_stream_get_data_p)(sn_tls_stream *, void *, size_t) =
        sn_tls_stream_get_data;
    n += sn_tls_stream_get_data_p != NULL;
    sn_err (*const sn_tls_stream_get_partial_data_p)(sn_tls_stream *, void *, size_t, size_t *) =
        sn_tls_stream_get_partial_data;
    n += sn_tls_stream_get_partial_data_p != NULL;
    sn_tcp_peer *(*const sn_tls_stream_get_stream_p)(sn_tls_stream *) = sn_tls_stream_get_stream;
    n += sn_tls_stream_get_stream_p != NULL;
    void (*const sn_tls_stream_disconnect_from_stream_p)(sn_tls_stream *) =
        sn_tls_stream_disconnect_from_stream;
    n += sn_tls_stream_disconnect_from_stream_p != NULL;
    const char *(*const sn_tls_stream_get_error_message_p)(const sn_tls_stream *) =
        sn_tls_stream_get_error_message;
    n += sn_tls_stream_get_error_message_p != NULL;
    assert_int_equal(n, 110);
}

static void status_numbers_are_the_contract(void **state)
{
    (void)state;
    assert_int_equal(SN_DTLS_STATUS_DISCONNECTED, 0);
    assert_int_equal(SN_DTLS_STATUS_HANDSHAKING, 1);
    assert_int_equal(SN_DTLS_STATUS_CONNECTED, 2);
    assert_int_equal(SN_DTLS_STATUS_ERROR, 3);
    assert_int_equal(SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH, 4);
    assert_int_equal(SN_TCP_STATUS_NONE, 0);
    assert_int_equal(SN_TCP_STATUS_CONNECTING, 1);
    assert_int_equal(SN_TCP_STATUS_CONNECTED, 2);
    assert_int_equal(SN_TCP_STATUS_ERROR, 3);
    assert_int_equal(SN_TLS_STATUS_DISCONNECTED, 0);
    assert_int_equal(SN_TLS_STATUS_HANDSHAKING, 1);
    assert_int_equal(SN_TLS_STATUS_CONNECTED, 2);
    assert_int_equal(SN_TLS_STATUS_ERROR, 3);
    assert_int_equal(SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_function_has_its_contract_signature),
        cmocka_unit_test(status_numbers_are_the_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
