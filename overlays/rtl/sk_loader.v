// sk_loader: parses the weight image (pynq_sparse.core_interface.weight_image) into load-bus writes
`default_nettype none
`timescale 1ns / 1ps

// Image: magic, model_id, n_layers; per layer an 8-word header, packed entries
// (two 16-bit entries weight | owner << 8 per word, group-major), bias, mult
// (one int32 each), shift (four bytes per word); last, the CRC-32 (zlib) of all
// previous words. The layer headers must equal this bitstream's shapes (k is
// free); otherwise ERR_WEIGHT_SHAPE. The CRC is checked at COMMIT.
module sk_loader #(
    // per layer (0..3): header word 0 (kind | pool << 8 | n_pack << 16), in_c, in_h, in_w,
    // out_channels, kernel_size, (k: not checked), fan_in -- defaults: the shipped network
    parameter [32*8*4-1:0] HDR = {
        32'd1500, 32'd0, 32'd0, 32'd12,   32'd1, 32'd1, 32'd1500, 32'h00010101,   // fc2
        32'd1600, 32'd0, 32'd0, 32'd1500, 32'd1, 32'd1, 32'd1600, 32'h00190101,   // fc1
        32'd1600, 32'd0, 32'd5, 32'd64,   32'd14, 32'd14, 32'd64, 32'h00080200,   // conv2
        32'd25,   32'd0, 32'd5, 32'd64,   32'd32, 32'd32, 32'd1,  32'h00040200    // conv1 (n_pack 4)
    }
) (
    input  wire        clk,
    input  wire        rst,

    input  wire        begin_load,   // WLOAD_CTRL.BEGIN: restart the parser
    input  wire        commit,       // WLOAD_CTRL.COMMIT: check and activate
    input  wire [31:0] s_word,       // WLOAD_DATA
    input  wire        s_valid,
    output wire        s_ready,

    // load bus (broadcast to every copy)
    output reg         ld_we,
    output reg  [1:0]  ld_layer,
    output reg  [2:0]  ld_sel,
    output reg  [7:0]  ld_group,
    output reg  [15:0] ld_addr,
    output reg  [31:0] ld_data,

    output reg         loaded,       // a committed image is active
    output reg         loading,      // BEGIN seen, not yet committed
    output reg  [31:0] model_id,     // of the loaded image (0 when none)
    output reg  [31:0] word_count,   // words since BEGIN
    output reg         err_crc,      // pulse: COMMIT found a CRC mismatch
    output reg         err_shape     // pulse: COMMIT found a header / length mismatch
);

function [31:0] hdr(input integer layer, input integer i);
    hdr = HDR[(layer*8 + i)*32 +: 32];
endfunction
function [31:0] n_groups(input integer layer);
    n_groups = hdr(layer, 4) / ((hdr(layer, 0) >> 16) & 32'hFF);
endfunction
function [31:0] n_entries(input integer layer);
    n_entries = n_groups(layer) * hdr(layer, 7);
endfunction
function [31:0] layer_words(input integer layer);
    layer_words = 8 + (n_entries(layer) + 1) / 2 + 2 * hdr(layer, 4) + (hdr(layer, 4) + 3) / 4;
endfunction
localparam [31:0] TOTAL = 3 + layer_words(0) + layer_words(1) + layer_words(2) + layer_words(3) + 1;

localparam [2:0] SEG_HEAD = 0, SEG_LHDR = 1, SEG_ENT = 2, SEG_BIAS = 3, SEG_MULT = 4, SEG_SHIFT = 5,
                 SEG_CRC = 6, SEG_EXTRA = 7;

reg [2:0]  seg_reg = SEG_HEAD;
reg [1:0]  layer_reg = 0;
reg [31:0] pos_reg = 0;          // word within the segment
reg [7:0]  g_reg = 0;            // entry group
reg [15:0] f_reg = 0;            // entry fan-in position
reg [31:0] e_reg = 0;            // entries written in this layer
reg [15:0] o_reg = 0;            // kernel index for bias / mult / shift
reg [31:0] word_reg = 0;         // word being unpacked
reg [2:0]  sub_reg = 0, nsub_reg = 0;
reg        pend_reg = 1'b0;
reg [31:0] crc_reg = 32'hFFFFFFFF;
reg        crc_ok_reg = 1'b0, bad_reg = 1'b0;

assign s_ready = !pend_reg;
wire take = s_valid && s_ready;

function [31:0] crc32_word(input [31:0] crc, input [31:0] d);
    integer i;
    reg [31:0] c;
    begin
        c = crc ^ d;
        for (i = 0; i < 32; i = i + 1) begin
            c = c[0] ? ((c >> 1) ^ 32'hEDB88320) : (c >> 1);
        end
        crc32_word = c;
    end
endfunction

// per-layer shape constants, selected by layer_reg (4:1 muxes of constants: a function of layer_reg
// evaluated at run time would build a divider, a multiplier and a shifter over HDR)
localparam [127:0] FANS = {hdr(3, 7), hdr(2, 7), hdr(1, 7), hdr(0, 7)};
localparam [127:0] ENTS = {n_entries(3), n_entries(2), n_entries(1), n_entries(0)};
localparam [127:0] OUTS = {hdr(3, 4), hdr(2, 4), hdr(1, 4), hdr(0, 4)};
wire [31:0] cur_fan = FANS[layer_reg*32 +: 32];
wire [31:0] cur_entries = ENTS[layer_reg*32 +: 32];
wire [31:0] cur_out = OUTS[layer_reg*32 +: 32];
wire [4:0]  cur_hi = {layer_reg, pos_reg[2:0]};          // header word pos_reg (< 8 in SEG_LHDR)
wire [31:0] cur_hdr = HDR[cur_hi*32 +: 32];

always @(posedge clk) begin
    ld_we <= 1'b0;
    err_crc <= 1'b0;
    err_shape <= 1'b0;

    if (take) begin
        word_count <= word_count + 1;
        if (word_count == TOTAL - 1) begin
            crc_ok_reg <= (~crc_reg == s_word);
        end else begin
            crc_reg <= crc32_word(crc_reg, s_word);
        end
        word_reg <= s_word;
        sub_reg <= 0;
        case (seg_reg)
            SEG_HEAD: begin
                if (pos_reg == 0 && s_word != 32'h50534B57) bad_reg <= 1'b1;
                if (pos_reg == 1) model_id <= s_word;
                if (pos_reg == 2 && s_word != 4) bad_reg <= 1'b1;
                pos_reg <= pos_reg + 1;
                if (pos_reg == 2) begin
                    seg_reg <= SEG_LHDR;
                    pos_reg <= 0;
                    layer_reg <= 0;
                end
            end
            SEG_LHDR: begin
                if (pos_reg == 6) begin
                    pend_reg <= 1'b1;          // k: write it to the layer
                    nsub_reg <= 1;
                end else if (s_word != cur_hdr) begin
                    bad_reg <= 1'b1;
                end
                pos_reg <= pos_reg + 1;
                if (pos_reg == 7) begin
                    seg_reg <= SEG_ENT;
                    pos_reg <= 0;
                    g_reg <= 0;
                    f_reg <= 0;
                    e_reg <= 0;
                end
            end
            SEG_ENT, SEG_BIAS, SEG_MULT, SEG_SHIFT: begin
                pend_reg <= 1'b1;
                nsub_reg <= (seg_reg == SEG_ENT) ? 3'd2 : (seg_reg == SEG_SHIFT) ? 3'd4 : 3'd1;
            end
            SEG_CRC: begin
                seg_reg <= SEG_EXTRA;
            end
            default: begin
                bad_reg <= 1'b1;               // words after the CRC
            end
        endcase
    end

    // unpack the held word into load-bus writes, one per cycle
    if (pend_reg) begin
        sub_reg <= sub_reg + 1;
        if (sub_reg + 1 == nsub_reg) pend_reg <= 1'b0;
        ld_layer <= layer_reg;
        case (seg_reg)
            SEG_LHDR: begin
                ld_we <= 1'b1;
                ld_sel <= 3'd4;
                ld_data <= word_reg;
                pend_reg <= 1'b0;
            end
            SEG_ENT: begin
                if (e_reg < cur_entries) begin
                    ld_we <= 1'b1;
                    ld_sel <= 3'd0;
                    ld_group <= g_reg;
                    ld_addr <= f_reg;
                    ld_data <= {16'd0, word_reg[sub_reg*16 +: 16]};
                    e_reg <= e_reg + 1;
                    if (f_reg == cur_fan - 1) begin
                        f_reg <= 0;
                        g_reg <= g_reg + 1;
                    end else begin
                        f_reg <= f_reg + 1;
                    end
                end
                if (sub_reg + 1 == nsub_reg && e_reg + 1 >= cur_entries) begin
                    seg_reg <= SEG_BIAS;
                    o_reg <= 0;
                end
            end
            SEG_BIAS, SEG_MULT: begin
                ld_we <= 1'b1;
                ld_sel <= (seg_reg == SEG_BIAS) ? 3'd1 : 3'd2;
                ld_addr <= o_reg;
                ld_data <= word_reg;
                o_reg <= o_reg + 1;
                if (o_reg == cur_out - 1) begin
                    seg_reg <= (seg_reg == SEG_BIAS) ? SEG_MULT : SEG_SHIFT;
                    o_reg <= 0;
                end
            end
            SEG_SHIFT: begin
                if (o_reg < cur_out) begin
                    ld_we <= 1'b1;
                    ld_sel <= 3'd3;
                    ld_addr <= o_reg;
                    ld_data <= {24'd0, word_reg[sub_reg*8 +: 8]};
                    o_reg <= o_reg + 1;
                end
                if (sub_reg == 3 && o_reg + 1 >= cur_out) begin
                    pos_reg <= 0;
                    if (layer_reg == 3) begin
                        seg_reg <= SEG_CRC;
                    end else begin
                        layer_reg <= layer_reg + 1;
                        seg_reg <= SEG_LHDR;
                    end
                end
            end
            default: pend_reg <= 1'b0;
        endcase
    end

    if (commit) begin
        loading <= 1'b0;
        if (bad_reg || word_count != TOTAL) begin
            err_shape <= 1'b1;
        end else if (!crc_ok_reg) begin
            err_crc <= 1'b1;
        end else begin
            loaded <= 1'b1;
        end
    end

    if (rst || begin_load) begin
        seg_reg <= SEG_HEAD;
        layer_reg <= 0;
        pos_reg <= 0;
        pend_reg <= 1'b0;
        crc_reg <= 32'hFFFFFFFF;
        crc_ok_reg <= 1'b0;
        bad_reg <= 1'b0;
        word_count <= 0;
        loaded <= 1'b0;
        loading <= begin_load;
        ld_we <= 1'b0;
        if (rst) begin
            model_id <= 0;
        end
    end
end

endmodule

`resetall
